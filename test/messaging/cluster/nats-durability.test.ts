/**
 * What a node says of the nats-server's protection against a power loss follows what the server
 * takes: a real nats-server is started with `jetstream { sync_interval: always }` and must start
 * exactly when natsDurability says its version takes the option (2.9 refuses it).
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { natsDurability } from '../../../src/messaging/cluster/nats-durability.js';
import { NATS_SERVER, startNatsServer, type NatsServer } from '../../helpers/nats-server.js';
import { hasSystem } from '../../helpers/system.js';
import { makeTempDir } from '../../helpers/tmp.js';

/** Whether nats-server starts on a configuration with `sync_interval: always` (its exit code and output otherwise). */
function startsWithSyncAlways(): Promise<{ started: boolean; output: string }> {
  const dir = makeTempDir('caxton-nats-sync-');
  const conf = join(dir, 'nats.conf');
  writeFileSync(
    conf,
    `listen: "127.0.0.1:-1"\nhttp: "127.0.0.1:-1"\njetstream { store_dir: "${join(dir, 'js')}", sync_interval: always }\n`,
  );
  return new Promise((resolve, reject) => {
    const child = spawn(NATS_SERVER, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nats-server neither started nor exited within 10 s:\n${output}`));
    }, 10_000);
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      output += d;
      if (/Server is ready/.test(output)) {
        clearTimeout(timer);
        child.once('exit', () => resolve({ started: true, output }));
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve({ started: false, output });
    });
  });
}

describe('natsDurability', () => {
  let server: NatsServer | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  it('reads the trade from the version', () => {
    expect(natsDurability('2.9.10', 300_000)).toMatchObject({ version: '2.9.10', syncAlways: false });
    expect(natsDurability('2.9.10', 300_000).summary).toMatch(/needs 2\.10 or later.*300 s/);
    expect(natsDurability('2.10.0', 300_000).syncAlways).toBe(true);
    expect(natsDurability('v2.11.4', 300_000).syncAlways).toBe(true);
    expect(natsDurability('3.0.0', 300_000).syncAlways).toBe(true);
    expect(natsDurability(undefined, 300_000)).toMatchObject({ version: 'unknown', syncAlways: false });
  });

  it.skipIf(!hasSystem('nats-server'))("matches what the machine's nats-server accepts", async () => {
    server = await startNatsServer();
    const nc = await connect({ servers: server.url });
    const version = nc.info?.version;
    await nc.close();
    expect(version).toMatch(/^\d+\.\d+/);
    const { started, output } = await startsWithSyncAlways();
    expect({ version, started }, output).toEqual({ version, started: natsDurability(version, 1000).syncAlways });
  });
});
