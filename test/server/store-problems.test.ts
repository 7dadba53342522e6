/**
 * "store problems": a bad caxton.db or data dir stops `caxton serve` with exit code 1 and
 * a message naming the file and saying what to do (never "unexpected error", never a stack trace),
 * and the file is left as it was; an empty file starts as a new store and says so; one damaged row
 * is skipped with a warning naming its table and row while the start goes on.
 */
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  CLI,
  cleanEnv,
  cleanup,
  expectExit,
  expectNoStackTrace,
  runCli,
  startServe,
  stopServe,
  tempDir,
  tomlAgent,
  type CliResult,
} from '../cli/helpers/cli.js';

/** root may write anywhere: permission cases run the CLI as nobody when the tests run as root. */
const AS_ROOT = process.getuid?.() === 0;

function runAsNobody(args: string[], cwd: string): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: cleanEnv(),
      uid: 65534,
      gid: 65534,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', rej);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr });
    });
  });
}

const serveArgs = (dir: string) => [
  'serve',
  '--data-dir',
  join(dir, 'data'),
  '--agents-dir',
  join(dir, 'agents'),
  '--port',
  '0',
  '--metrics-port',
  '0',
  '--log-level',
  'warn',
];

/** A directory with agents/ and data/ (holding `db` as caxton.db when given). */
function layout(db?: Buffer): { dir: string; file: string } {
  const dir = tempDir('caxton-store-');
  mkdirSync(join(dir, 'agents'));
  mkdirSync(join(dir, 'data'));
  const file = join(dir, 'data', 'caxton.db');
  if (db) writeFileSync(file, db);
  return { dir, file };
}

/** A real Caxton database made by a real server run (an API-deployed agent in it). */
let good: Buffer;
/** The admin key that run created: the store holds its hash. */
let goodKey: string;

describe('caxton serve with a bad data file', () => {
  beforeAll(async () => {
    assertBuilt();
    const { dir, file } = layout();
    const serve = await startServe({
      cwd: dir,
      args: ['--data-dir', join(dir, 'data'), '--agents-dir', join(dir, 'agents'), '--log-level', 'warn'],
      readyTimeoutMs: 60_000,
    });
    // The admin key the first start wrote authenticates the deploy.
    const key = (goodKey = readFileSync(join(dir, 'data', 'admin.key'), 'utf8').trim());
    const res = await fetch(`${serve.url}/api/v1/agents`, {
      method: 'POST',
      headers: { 'content-type': 'application/toml', authorization: `Bearer ${key}` },
      body: tomlAgent('keeper'),
    });
    expect(res.status).toBe(201);
    expect((await stopServe(serve, 'SIGTERM')).code).toBe(0);
    good = readFileSync(file);
    expect(good.length).toBeGreaterThan(16 * 4096);
  }, 120_000);
  afterAll(cleanup);

  async function expectRefused(
    db: Buffer | undefined,
    re: RegExp,
    setup?: (dir: string, file: string) => void,
    asNobody = false,
  ) {
    const { dir, file } = layout(db);
    setup?.(dir, file);
    const before = db && readFileSync(file);
    if (asNobody && AS_ROOT) chmodSync(dir, 0o755); // mkdtemp's 0700 would keep nobody out of its own test dir
    const r =
      asNobody && AS_ROOT
        ? await runAsNobody(serveArgs(dir), dir)
        : await runCli(serveArgs(dir), { cwd: dir, timeoutMs: 60_000 });
    expectExit(r, 1);
    expectNoStackTrace(r);
    expect(r.stderr).not.toContain('unexpected error');
    expect(r.stderr).toContain(db === undefined ? dirname(file) : file);
    expect(r.stderr).toMatch(re);
    if (before) expect(readFileSync(file).equals(before), 'the file was not modified').toBe(true);
    return r;
  }

  it('garbage: "not a SQLite database", restore from a backup or move it aside', async () => {
    await expectRefused(
      Buffer.from('this is not a database at all\n'.repeat(500)),
      /not a SQLite database.*Restore it from a backup, or move it aside/,
    );
  });

  it('truncated: says so, with the size its header promised', async () => {
    await expectRefused(
      good.subarray(0, 3 * 4096),
      /is truncated \(12288 bytes; its header says \d+\).*Restore it from a backup/,
    );
  });

  it('damaged pages after a valid header: "damaged", restore or move aside', async () => {
    const bad = Buffer.from(good);
    // Keep page 1 (the header and schema root) and scribble over every other page.
    for (let i = 4096; i < bad.length; i++) bad[i] = (i * 31) & 0xff;
    await expectRefused(bad, /damaged|malformed|not a database/);
  });

  it("another application's SQLite database: refused, not migrated into", async () => {
    const { dir } = layout();
    const foreign = join(dir, 'other.db');
    const o = new Database(foreign);
    o.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices (total) VALUES (12.5)');
    o.close();
    const r = await expectRefused(
      readFileSync(foreign),
      /another application's SQLite database \(tables invoices, no Caxton schema\).*move the file aside/,
    );
    expect(r.stderr).toContain('data_dir');
  });

  it('a read-only data dir: "not writable", fix its permissions', async () => {
    // The first file the server creates there is its lock (one server per data dir), then caxton.db.
    await expectRefused(
      undefined,
      /cannot create the (lock|data) file .*: the data dir .* is not writable .*fix its permissions/,
      (dir) => {
        const data = join(dir, 'data');
        chmodSync(data, 0o555);
        if (AS_ROOT) chownSync(data, 65534, 65534);
      },
      true,
    );
  });

  it('a read-only data file: "cannot read and write", fix its permissions', async () => {
    await expectRefused(
      good,
      /cannot read and write the data file .*fix its permissions|cannot open the data file .*fix the permissions/,
      (dir, file) => {
        chmodSync(file, 0o444);
        if (AS_ROOT) {
          chownSync(join(dir, 'data'), 65534, 65534);
          chownSync(file, 65534, 65534);
        }
      },
      true,
    );
  });

  it('an empty (0-byte) file starts as a new store and says so', async () => {
    const { dir, file } = layout(Buffer.alloc(0));
    const serve = await startServe({
      cwd: dir,
      args: ['--data-dir', join(dir, 'data'), '--agents-dir', join(dir, 'agents'), '--log-level', 'warn'],
      readyTimeoutMs: 60_000,
    });
    await stopServe(serve, 'SIGTERM');
    expect(serve.stdout()).toMatch(
      new RegExp(
        `the data file ${file.replace(/[.]/g, '\\.')} is empty \\(0 bytes\\): starting a new, empty store.*restore it from a backup`,
      ),
    );
    expect(statSync(file).size).toBeGreaterThan(0);
  }, 90_000);

  it('damaged rows (an API agent whose stored definition is not JSON, or JSON of the wrong shape) are skipped with a warning; the start goes on', async () => {
    const { dir, file } = layout(good);
    const db = new Database(file);
    db.exec(
      "INSERT INTO agents (key, name, format, source, definition, revision, deployed_at, updated_at) VALUES ('broken', 'broken', 'toml', 'x', '{\"name\": \"bro', 1, '2026-01-01', '2026-01-01')",
    );
    // Valid JSON, wrong fields: it must not load, or listing and showing the agents would answer 500.
    const keeper = JSON.parse(
      db.prepare("SELECT definition FROM agents WHERE key = 'keeper'").pluck().get() as string,
    ) as Record<string, unknown>;
    const shapeless = JSON.stringify({
      ...keeper,
      name: 'shapeless',
      capabilities: 'not-a-list',
      limits: { max_turns: 'ten' },
    });
    db.prepare(
      "INSERT INTO agents (key, name, format, source, definition, revision, deployed_at, updated_at) VALUES ('shapeless', 'shapeless', 'toml', 'x', ?, 1, '2026-01-01', '2026-01-01')",
    ).run(shapeless);
    db.exec(
      "INSERT INTO conversations (id, protocol, state, initiator, participants, capability, turns, max_turns, created_at, updated_at, expires_at, reason) VALUES ('c-bad', NULL, 'in_progress', 'x', 'not json', NULL, 1, 10, '2026-01-01', '2026-01-01', NULL, NULL)",
    );
    db.close();
    const serve = await startServe({
      cwd: dir,
      args: ['--data-dir', join(dir, 'data'), '--agents-dir', join(dir, 'agents'), '--log-level', 'warn'],
      readyTimeoutMs: 60_000,
    });
    // The copied store has keys, so the key file that came with it authenticates.
    const auth = { authorization: `Bearer ${goodKey}` };
    const list = await fetch(`${serve.url}/api/v1/agents`, { headers: auth });
    const listed = (await list.json()) as { agents: { name: string }[] };
    const one = await fetch(`${serve.url}/api/v1/agents/shapeless`, { headers: auth });
    await one.text();
    await stopServe(serve, 'SIGTERM');
    expect(list.status).toBe(200);
    expect(listed.agents.map((a) => a.name)).toEqual(['keeper']);
    expect(one.status).toBe(404);
    expect(serve.stdout()).toMatch(
      /"table":"agents","row":"broken".*skipped the stored agent \\"broken\\": its stored definition is damaged/,
    );
    expect(serve.stdout()).toMatch(
      /"table":"agents","row":"shapeless".*skipped the stored agent \\"shapeless\\": its stored definition has the wrong shape \(capabilities: expected an array.*limits\.max_turns: expected a number.*\); redeploy it/,
    );
    expect(serve.stdout()).toMatch(/"table":"conversations","row":"c-bad".*skipped conversations row c-bad at start/);
  }, 90_000);
});
