/**
 * Zero-friction authentication on one machine (ADR 0025): at first start the server creates an
 * admin key and writes it, mode 0600, to `<data_dir>/admin.key`; while it runs, a record in
 * `$CAXTON_HOME/run/` (default ~/.caxton) names that file for its port, so the CLI of the same
 * user, talking to the same loopback port, finds the key wherever it runs from. Other users
 * cannot read either file.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { ApiKeyStore } from './keys.js';

export const ADMIN_KEY_FILE = 'admin.key';

/** Where the CLI keeps credentials and servers keep their run records. */
export function caxtonHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.CAXTON_HOME ?? join(homedir(), '.caxton');
}

function writePrivate(path: string, text: string): void {
  rmSync(path, { force: true });
  // Created 0600 in one step (no window where another user could open it).
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/**
 * The bootstrap key's name: `admin`, or `admin-<node>` on a cluster node, where keys travel
 * between nodes (ADR 0044) and each node's first key must not clash with another's. A node name
 * too long for a key name (64 characters) is cut and given a short hash of the whole name.
 */
export function bootstrapKeyName(node?: string): string {
  if (node === undefined) return 'admin';
  const name = `admin-${node}`;
  return name.length <= 64
    ? name
    : `admin-${node.slice(0, 49)}-${createHash('sha256').update(node).digest('hex').slice(0, 8)}`;
}

/**
 * Creates the first admin key when the store has no active key. Returns the key file's path when
 * it wrote one. A store that already has keys is left alone (its admin.key, if any, too). On a
 * cluster node (`node` given) the key is `admin-<node>`.
 */
export function bootstrapAdminKey(
  keys: ApiKeyStore,
  dataDir: string,
  opts: { node?: string } = {},
): string | undefined {
  if (keys.countActive() > 0) return undefined;
  const { secret } = keys.create({ name: bootstrapKeyName(opts.node), role: 'admin', createdBy: 'bootstrap' });
  const file = join(resolve(dataDir), ADMIN_KEY_FILE);
  writePrivate(file, `${secret}\n`);
  return file;
}

export interface RunRecord {
  url: string;
  pid: number;
  key_file: string;
  started_at: string;
}

const recordPath = (port: number, env?: NodeJS.ProcessEnv) => join(caxtonHome(env), 'run', `${port}.json`);

/** Writes the run record of a server listening on loopback `port`; returns a function removing it. */
export function writeRunRecord(port: number, url: string, keyFile: string): () => void {
  const path = recordPath(port);
  try {
    mkdirSync(join(caxtonHome(), 'run'), { recursive: true, mode: 0o700 });
    writePrivate(
      path,
      JSON.stringify({
        url,
        pid: process.pid,
        key_file: keyFile,
        started_at: new Date().toISOString(),
      } satisfies RunRecord),
    );
  } catch {
    return () => {}; // a read-only home only costs the CLI's automatic key lookup
  }
  return () => {
    try {
      const r = JSON.parse(readFileSync(path, 'utf8')) as RunRecord;
      if (r.pid === process.pid) rmSync(path, { force: true });
    } catch {
      // already gone or replaced by another server on this port
    }
  };
}

/** The admin key of a live local server on `port`, if this user can read it. */
export function localServerKey(port: number, env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    const r = JSON.parse(readFileSync(recordPath(port, env), 'utf8')) as RunRecord;
    try {
      process.kill(r.pid, 0);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ESRCH') return undefined; // stale record
    }
    return readKeyFile(r.key_file);
  } catch {
    return undefined;
  }
}

export function readKeyFile(path: string): string | undefined {
  if (!existsSync(path)) return undefined;
  const text = readFileSync(path, 'utf8').trim();
  return text.length > 0 && text.length < 1024 ? text : undefined;
}
