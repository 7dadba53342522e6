/**
 * Built-in `filesystem`: read, write and list under the roots the operator maps, in real temp
 * directories with real symlinks. "..", paths outside the roots and symlink escapes are refused
 * by the host; the server keeps answering.
 */
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';
import { loadBuiltin, type Loaded } from './helpers.js';

let base: string;
let dataDir: string;
let roDir: string;
let fs: Loaded;

beforeAll(() => {
  base = makeTempDir('caxton-builtin-fs-');
  dataDir = join(base, 'data');
  roDir = join(base, 'ro');
  mkdirSync(join(dataDir, 'sub'), { recursive: true });
  mkdirSync(roDir);
  writeFileSync(join(dataDir, 'notes.txt'), 'hello, wörld\n');
  writeFileSync(join(dataDir, 'empty.txt'), '');
  writeFileSync(join(dataDir, 'sub', 'deep.txt'), 'deep');
  writeFileSync(join(roDir, 'manual.md'), '# Manual');
  writeFileSync(join(base, 'secret.txt'), 'TOP SECRET');
  symlinkSync(join(base, 'secret.txt'), join(dataDir, 'escape.txt'));
  symlinkSync(base, join(dataDir, 'escape-dir'));
  symlinkSync(join(dataDir, 'notes.txt'), join(dataDir, 'inner-link.txt'));
  fs = loadBuiltin('filesystem', { paths: { '/data': dataDir, '/readonly': roDir } });
});
afterAll(removeTempDirs);

const failure = async (tool: string, args: Record<string, unknown>) => {
  const r = await fs.call(tool, args);
  expect(r.is_error).toBe(true);
  return r.content;
};

describe('filesystem', () => {
  it('declares read, write and list, and the roots /data (write) and /readonly (read)', () => {
    expect(fs.server.tools.map((t) => t.name)).toEqual(['filesystem.read', 'filesystem.write', 'filesystem.list']);
    expect(fs.server.manifest.permissions.paths).toEqual({ '/data': 'write', '/readonly': 'read' });
    expect(fs.server.warnings).toEqual([]);
  });

  it('reads files under both roots, and links that stay inside', async () => {
    expect(await fs.json('read', { path: '/data/notes.txt' })).toEqual({
      path: '/data/notes.txt',
      content: 'hello, wörld\n',
      bytes: 14,
    });
    expect(await fs.json('read', { path: '/data/empty.txt' })).toEqual({
      path: '/data/empty.txt',
      content: '',
      bytes: 0,
    });
    expect(await fs.json('read', { path: '/data/./sub//deep.txt' })).toMatchObject({ content: 'deep' });
    expect(await fs.json('read', { path: '/readonly/manual.md' })).toMatchObject({ content: '# Manual' });
    expect(await fs.json('read', { path: '/data/inner-link.txt' })).toMatchObject({ content: 'hello, wörld\n' });
  });

  it('lists directories', async () => {
    expect(await fs.json('list', { path: '/data' })).toEqual({
      path: '/data',
      entries: ['empty.txt', 'escape-dir', 'escape.txt', 'inner-link.txt', 'notes.txt', 'sub'],
    });
    expect(await fs.json('list', { path: '/data/sub' })).toEqual({ path: '/data/sub', entries: ['deep.txt'] });
    expect(await fs.json('list', { path: '/readonly' })).toEqual({ path: '/readonly', entries: ['manual.md'] });
  });

  it('writes, replaces and appends under /data', async () => {
    expect(await fs.json('write', { path: '/data/out.txt', content: 'one\n' })).toEqual({
      path: '/data/out.txt',
      bytes: 4,
      created: true,
    });
    expect(await fs.json('write', { path: '/data/out.txt', content: 'two\n', append: true })).toEqual({
      path: '/data/out.txt',
      bytes: 8,
      created: false,
    });
    expect(readFileSync(join(dataDir, 'out.txt'), 'utf8')).toBe('one\ntwo\n');
    expect(await fs.json('write', { path: '/data/out.txt', content: 'ünï' })).toEqual({
      path: '/data/out.txt',
      bytes: 5,
      created: false,
    });
    expect(readFileSync(join(dataDir, 'out.txt'), 'utf8')).toBe('ünï');
    expect(await fs.json('write', { path: '/data/sub/new.md', content: '', append: true })).toEqual({
      path: '/data/sub/new.md',
      bytes: 0,
      created: true,
    });
    expect(readFileSync(join(dataDir, 'sub', 'new.md'), 'utf8')).toBe('');
  });

  it('refuses path traversal with ".."', async () => {
    expect(await failure('read', { path: '/data/../secret.txt' })).toBe(
      'tool "filesystem.read" failed (denied): file path "/data/../secret.txt" contains "..": path traversal is not allowed',
    );
    expect(await failure('read', { path: '/data/sub/../../secret.txt' })).toMatch(/path traversal is not allowed/);
    expect(await failure('write', { path: '/data/../pwned.txt', content: 'x' })).toMatch(
      /\(denied\): .*path traversal is not allowed/,
    );
    expect(await failure('list', { path: '/data/..' })).toMatch(/path traversal is not allowed/);
  });

  it('refuses absolute host paths outside the roots and relative paths', async () => {
    expect(await failure('read', { path: join(base, 'secret.txt') })).toMatch(
      /\(denied\): file path ".*secret\.txt" is outside the granted roots \(\/readonly \(read\), \/data \(write\)\)/,
    );
    expect(await failure('read', { path: '/etc/passwd' })).toMatch(
      /\(denied\): file path "\/etc\/passwd" is outside the granted roots/,
    );
    expect(await failure('list', { path: '/' })).toMatch(/\(denied\): file path "\/" is outside the granted roots/);
    expect(await failure('read', { path: 'notes.txt' })).toBe(
      'tool "filesystem.read" failed (error): "path" must be an absolute path under /data or /readonly (e.g. "/data/notes.txt"), not "notes.txt"',
    );
  });

  it('refuses symlinks leading out of the root, for reads, writes and listings', async () => {
    const r = await failure('read', { path: '/data/escape.txt' });
    expect(r).toBe(
      'tool "filesystem.read" failed (denied): file path "/data/escape.txt" resolves outside its root /data (through a symlink): access denied',
    );
    expect(r).not.toContain('TOP SECRET');
    expect(await failure('read', { path: '/data/escape-dir/secret.txt' })).toMatch(/resolves outside its root \/data/);
    expect(await failure('list', { path: '/data/escape-dir' })).toMatch(
      /\(denied\): .*resolves outside its root \/data/,
    );
    expect(await failure('write', { path: '/data/escape.txt', content: 'overwritten' })).toMatch(
      /\(denied\): file path "\/data\/escape\.txt" resolves outside its root/,
    );
    expect(await failure('write', { path: '/data/escape-dir/new.txt', content: 'x' })).toMatch(
      /\(denied\): .*resolves outside its root/,
    );
    expect(readFileSync(join(base, 'secret.txt'), 'utf8')).toBe('TOP SECRET');
  });

  it('refuses writes under /readonly', async () => {
    expect(await failure('write', { path: '/readonly/manual.md', content: 'x' })).toBe(
      'tool "filesystem.write" failed (denied): file path "/readonly/manual.md" is under the read-only root /readonly',
    );
    expect(readFileSync(join(roDir, 'manual.md'), 'utf8')).toBe('# Manual');
  });

  it('reports missing files and directories; the server keeps answering', async () => {
    expect(await failure('read', { path: '/data/nope.txt' })).toBe(
      'tool "filesystem.read" failed (io_error): file "/data/nope.txt" does not exist',
    );
    expect(await failure('write', { path: '/data/no-dir/x.txt', content: 'x' })).toMatch(
      /\(io_error\): file "\/data\/no-dir" does not exist/,
    );
    expect(await failure('read', { path: '/data/sub' })).toMatch(/\(io_error\): "\/data\/sub" is not a regular file/);
    expect(await fs.json('read', { path: '/data/notes.txt' })).toMatchObject({ content: 'hello, wörld\n' });
  });

  it('refuses everything when the operator maps no directory', async () => {
    const ungranted = loadBuiltin('filesystem');
    expect(ungranted.server.warnings.map((w) => w.message).join('\n')).toMatch(
      /asks for \/data \(write\), which the operator has not mapped/,
    );
    expect((await ungranted.call('read', { path: '/data/notes.txt' })).content).toMatch(
      /\(denied\): file access is not granted to this tool server/,
    );
  });

  it('malformed input gets a clear error naming the field', async () => {
    expect(await failure('read', {})).toMatch(/\(invalid_input\): .*must have required property 'path'/);
    expect(await failure('read', { path: '' })).toMatch(
      /\(invalid_input\): .*\/path must NOT have fewer than 1 characters/,
    );
    expect(await failure('write', { path: '/data/x.txt' })).toMatch(
      /\(invalid_input\): .*must have required property 'content'/,
    );
    expect(await failure('write', { path: '/data/x.txt', content: 5 })).toMatch(
      /\(invalid_input\): .*\/content must be string/,
    );
    expect(await failure('write', { path: '/data/x.txt', content: 'x', append: 'yes' })).toMatch(
      /\(invalid_input\): .*\/append must be boolean/,
    );
    expect(await failure('list', { path: '/data', recursive: true })).toMatch(
      /\(invalid_input\): .*\(root\) must NOT have additional properties: "recursive"/,
    );
    expect(await failure('write', { path: '/data/sub/', content: 'x' })).toMatch(/\(error\): "path" names a directory/);
    expect(await failure('read', { path: '/data/a\u0000b' })).toMatch(/\(error\): "path" contains a NUL character/);
  });
});
