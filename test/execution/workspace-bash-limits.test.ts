/**
 * workspace.bash's memory, process and file-size limits through a real server (ADR 0113): a
 * memory bomb, a fork loop and a write past `file_size`, called at once through the catalogue,
 * each end as an error result naming its limit and `[workspace.bash]` key, the audit records
 * them as failures, no file outgrows the limit, and the server answers /health and runs the next
 * command afterwards.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processLimitBy } from '../../src/tools/workspace/index.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs, setTestKeys, startCaxton, tempDir, type Caxton } from './helpers/caxton.js';

let cx: Caxton;
let ws: string;

const call = async (command: string, timeout = 10_000) => {
  const res = await fetch(`${cx.url}/api/v1/tools/workspace/bash/call`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ args: { command, timeout } }),
  });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text) as { content: unknown; is_error?: boolean };
};
const textOf = (r: { content: unknown }) => (typeof r.content === 'string' ? r.content : JSON.stringify(r.content));

describe.skipIf(!hasSystem('bwrap'))('workspace.bash limits through the server', () => {
  beforeAll(async () => {
    setTestKeys();
    ws = tempDir('caxton-ws-limits-');
    cx = await startCaxton({
      config: {
        workspace: {
          path: ws,
          write: true,
          bash: {
            enabled: true,
            commands: ['python3', 'sh', 'head', 'echo'],
            memory: '256MiB',
            processes: 16,
            file_size: '1MiB',
          },
        },
      },
    });
  });

  afterAll(async () => {
    await cx?.close();
    removeTempDirs();
  });

  it('ends each bomb with an error naming its limit, and the server goes on', async () => {
    // The fork loop is bounded even if its limit failed: 200 sleeps at most, killed at 5 s.
    const [memory, processes, fileSize] = await Promise.all([
      call(`python3 -c "x=' '*3_000_000_000"`),
      call(`sh -c 'i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); done; wait'`, 5_000),
      call('head -c 100000000 /dev/zero > big'),
    ]);
    expect(memory.is_error).toBe(true);
    expect(textOf(memory)).toContain('memory limit: at most 256 MiB per process ([workspace.bash] memory');
    expect(processes.is_error).toBe(true);
    // Root with no writable pids cgroup has no process limit (RLIMIT_NPROC does not bind root; docs/workspace.md).
    if (processLimitBy())
      expect(textOf(processes)).toContain('process limit: at most 16 processes at once ([workspace.bash] processes');
    expect(fileSize.is_error).toBe(true);
    expect(textOf(fileSize)).toContain('file-size limit: no file may grow past 1 MiB ([workspace.bash] file_size');
    expect(statSync(join(ws, 'big')).size).toBeLessThanOrEqual(1024 * 1024);

    expect((await fetch(`${cx.url}/health`)).status).toBe(200);
    const next = await call('echo still here');
    expect(textOf(next)).toContain('still here');
    expect(next.is_error).toBeFalsy();

    const audit = (await (await fetch(`${cx.url}/api/v1/tools/audit?tool=workspace.bash`)).json()) as {
      records: { outcome: string }[];
    };
    expect(audit.records.map((r) => r.outcome).sort()).toEqual(
      ['ok', 'out_of_memory', 'output_too_large', processLimitBy() ? 'error' : 'timeout'].sort(),
    );
  });
});
