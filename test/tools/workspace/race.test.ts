/**
 * The workspace against a concurrent swapper (issue 63, F1): a child process renames a
 * directory of the workspace away and a symbolic link to the server's data directory or to
 * agents_dir into its place, in a tight loop, while thousands of workspace.read, .write and
 * .edit calls go through that directory. No read may return the admin key, and nothing may be
 * written into the data directory or agents_dir: the tools walk every path by directory
 * descriptors opened without following links (src/tools/workspace/at.ts).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ctx, tempDir, tools } from './helpers.js';

const SECRET = 'ADMIN-KEY-cx_admin_0123456789abcdef';
const ROUNDS = 1000;

// Swaps "d" between the real directory and a link, with renames. A write or an edit that finds
// "d" missing for a moment makes a new "d"; that one is removed to put the next in place.
const SWAPPER = `
const fs = require('node:fs');
const [ws] = process.argv.slice(1);
const p = (n) => ws + '/' + n;
const put = (from, to) => {
  for (;;) {
    try {
      return fs.renameSync(p(from), p(to));
    } catch {
      try { fs.rmSync(p(to), { recursive: true, force: true }); } catch {}
    }
  }
};
let swaps = 0;
for (;;) {
  const link = swaps % 2 === 0 ? 'to-data' : 'to-agents';
  put('d', 'd.real');
  put(link, 'd');
  if (swaps === 0) process.stdout.write('swapping\\n');
  put('d', link);
  put('d.real', 'd');
  swaps++;
}
`;

let swapper: ChildProcess | undefined;
afterEach(() => {
  swapper?.kill('SIGKILL');
  swapper = undefined;
});

function listing(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true }))
    out[e.name] = e.isFile() ? readFileSync(join(dir, e.name), 'utf8') : '(not a file)';
  return out;
}

describe('a directory swapped for a symbolic link while the tools work', () => {
  it(`no read, search or listing shows the data dir and nothing lands in the data dir or agents_dir over ${ROUNDS * 3} calls`, async () => {
    const ws = tempDir();
    const data = tempDir('caxton-data-');
    const agents = tempDir('caxton-agents-');
    writeFileSync(join(data, 'admin.key'), `${SECRET}\n`);
    writeFileSync(join(data, 'only-outside.db'), `${SECRET}\n`);
    mkdirSync(join(ws, 'd'));
    writeFileSync(join(ws, 'd', 'admin.key'), 'inside\n');
    symlinkSync(data, join(ws, 'to-data'));
    symlinkSync(agents, join(ws, 'to-agents'));
    const dataBefore = listing(data);

    swapper = spawn(process.execPath, ['-e', SWAPPER, ws], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      swapper!.stdout!.once('data', () => resolve());
      swapper!.once('exit', (code) => reject(new Error(`the swapper ended (${code})`)));
    });

    const t = tools({ path: ws, write: true }, [], [data]);
    const counts = { read: 0, readOk: 0, secret: 0, write: 0, writeOk: 0, edit: 0, search: 0, refusedByLink: 0 };
    for (let i = 0; i < ROUNDS; i++) {
      const r = await t('read').invoke({ file_path: 'd/admin.key' }, ctx());
      counts.read++;
      if (!r.is_error) counts.readOk++;
      if (r.content.includes(SECRET)) counts.secret++;
      if (r.content.includes('symbolic link')) counts.refusedByLink++;
      const w = await t('write').invoke(
        { file_path: `d/b-planted-${i % 7}.toml`, content: 'name = "b-planted"\n' },
        ctx(),
      );
      counts.write++;
      if (!w.is_error) counts.writeOk++;
      if (w.content.includes('symbolic link')) counts.refusedByLink++;
      // An empty old_string on a missing file creates it: the way an edit could plant a file.
      const e = await t('edit').invoke(
        { file_path: `d/sub/e-planted-${i % 5}.toml`, old_string: '', new_string: 'planted' },
        ctx(),
      );
      counts.edit++;
      if (e.content.includes(SECRET)) counts.secret++;
      if (e.content.includes('symbolic link')) counts.refusedByLink++;
      // Every tenth round, the listing and searching tools through the same directory.
      if (i % 10 === 0)
        for (const [name, args] of [
          ['grep', { pattern: 'ADMIN-KEY', path: 'd', output_mode: 'content' }],
          ['glob', { pattern: '**/*', path: 'd' }],
          ['ls', { path: 'd' }],
        ] as const) {
          const r = await t(name).invoke({ ...args }, ctx());
          counts.search++;
          if (r.content.includes(SECRET) || r.content.includes('only-outside')) counts.secret++;
        }
    }
    swapper.kill('SIGKILL');
    // The counts show the race was run for real; only the escapes are asserted.
    const dataAfter = listing(data);
    const landed = [
      ...Object.keys(dataAfter).filter((n) => dataBefore[n] !== dataAfter[n]),
      ...readdirSync(agents).map((n) => `agents/${n}`),
    ];
    console.info('workspace race:', JSON.stringify({ ...counts, landed }));

    expect(counts.read + counts.write + counts.edit).toBeGreaterThanOrEqual(2000);
    // Neither the admin key nor a name from the data directory was ever shown.
    expect(counts.secret).toBe(0);
    expect(landed).toEqual([]);
    expect(dataAfter).toEqual(dataBefore);
    // The calls did work inside the workspace when the directory was in place.
    expect(counts.readOk).toBeGreaterThan(0);
    expect(counts.writeOk).toBeGreaterThan(0);
  }, 60_000);
});

describe('symbolic links that stay inside the workspace', () => {
  it('are still followed: the path is resolved first, then walked without following anything', async () => {
    const ws = tempDir();
    mkdirSync(join(ws, 'real'));
    writeFileSync(join(ws, 'real', 'a.txt'), 'through the link\n');
    symlinkSync('real', join(ws, 'alias'));
    symlinkSync('real/a.txt', join(ws, 'a-link.txt'));
    const t = tools({ path: ws, write: true });
    expect((await t('read').invoke({ file_path: 'alias/a.txt' }, ctx())).content).toContain('through the link');
    expect((await t('read').invoke({ file_path: 'a-link.txt' }, ctx())).content).toContain('through the link');
    const w = await t('write').invoke({ file_path: 'alias/b.txt', content: 'new\n' }, ctx());
    expect(w.is_error, w.content).toBeFalsy();
    expect(readFileSync(join(ws, 'real', 'b.txt'), 'utf8')).toBe('new\n');
    const g = await t('grep').invoke({ pattern: 'through', path: 'alias', output_mode: 'content' }, ctx());
    expect(g.content).toContain(join(ws, 'real', 'a.txt'));
  });
});

describe('what is not a regular file', () => {
  it('a FIFO is refused without waiting for a writer, and a missing file answers as Claude Code does', async () => {
    const ws = tempDir();
    execFileSync('mkfifo', [join(ws, 'pipe')]);
    const t = tools({ path: ws, write: true });
    const r = await t('read').invoke({ file_path: 'pipe' }, ctx());
    expect(r).toMatchObject({ is_error: true, content: `${join(ws, 'pipe')} is not a regular file` });
    const m = await t('read').invoke({ file_path: 'nope.txt' }, ctx());
    expect(m).toMatchObject({ is_error: true });
    expect(m.content).toBe('File does not exist.');
  });
});

describe('a private directory moved under another name', () => {
  it('is still refused: the walk knows it by identity, not by path', async () => {
    const ws = tempDir();
    mkdirSync(join(ws, 'x', 'data'), { recursive: true });
    writeFileSync(join(ws, 'x', 'data', 'caxton.db'), `${SECRET}\n`);
    const t = tools({ path: ws, write: true }, [], [join(ws, 'x', 'data')]);
    // What a command could do to a directory above the data directory.
    renameSync(join(ws, 'x'), join(ws, 'y'));
    for (const [name, args] of [
      ['read', { file_path: 'y/data/caxton.db' }],
      ['write', { file_path: 'y/data/planted', content: 'x' }],
      ['ls', { path: 'y/data' }],
    ] as const) {
      const r = await t(name).invoke({ ...args }, ctx());
      expect(r.is_error, `${name}: ${r.content}`).toBe(true);
      expect(r.content).toContain("server's data directory");
    }
    const g = await t('grep').invoke({ pattern: 'ADMIN-KEY', output_mode: 'content' }, ctx());
    expect(g.content).not.toContain(SECRET);
    const l = await t('glob').invoke({ pattern: '**/*' }, ctx());
    expect(l.content).not.toContain('caxton.db');
    expect(readdirSync(join(ws, 'y', 'data'))).toEqual(['caxton.db']);
  });
});
