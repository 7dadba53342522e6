/**
 * File access: only under granted roots; `..`, absolute paths outside the roots and symlinks
 * leading out are refused, the server keeps answering. Uses the AssemblyScript example `text`
 * (tool read_file) and a WAT module for writes.
 */
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileAccess, WasmToolServer } from '../../../src/tools/servers/index.js';
import { makeTempDir, removeTempDirs } from '../../helpers/tmp.js';
import { ctx, ensureToolsBuilt, EXAMPLE_DIR, EXTISM_IMPORTS, server } from './helpers.js';

let base: string;
let dataDir: string;

beforeAll(() => {
  ensureToolsBuilt();
  base = makeTempDir('caxton-wasm-files-');
  dataDir = join(base, 'data');
  mkdirSync(join(dataDir, 'sub'), { recursive: true });
  writeFileSync(join(dataDir, 'notes.txt'), 'hello from the sandbox');
  writeFileSync(join(dataDir, 'sub', 'deep.txt'), 'deep');
  writeFileSync(join(base, 'secret.txt'), 'TOP SECRET');
  symlinkSync(join(base, 'secret.txt'), join(dataDir, 'escape.txt'));
  symlinkSync(base, join(dataDir, 'escape-dir'));
  symlinkSync(join(dataDir, 'notes.txt'), join(dataDir, 'inner-link.txt'));
});
afterAll(removeTempDirs);

describe('read_file through the AssemblyScript example', () => {
  let text: WasmToolServer;
  const read = (path: string) => text.tools.find((t) => t.name === 'text.read_file')!.invoke({ path }, ctx());
  beforeAll(() => {
    text = WasmToolServer.load(EXAMPLE_DIR, { grants: { paths: { '/data': dataDir } } });
  });

  it('reads a file under the granted root', async () => {
    expect(await read('/data/notes.txt')).toEqual({ content: 'hello from the sandbox' });
    expect(await read('/data/sub/deep.txt')).toEqual({ content: 'deep' });
    expect(await read('/data/./sub//deep.txt')).toEqual({ content: 'deep' });
  });

  it('follows a symlink that stays inside the root', async () => {
    expect(await read('/data/inner-link.txt')).toEqual({ content: 'hello from the sandbox' });
  });

  it('path traversal with ".." is refused', async () => {
    const r = await read('/data/../secret.txt');
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(
      /\(denied\): file path "\/data\/\.\.\/secret\.txt" contains "\.\.": path traversal is not allowed/,
    );
    expect((await read('/data/sub/../../secret.txt')).content).toMatch(/path traversal is not allowed/);
  });

  it('absolute paths outside the roots and relative paths are refused', async () => {
    expect((await read(join(base, 'secret.txt'))).content).toMatch(
      /\(denied\): file path ".*secret\.txt" is outside the granted roots \(\/data \(read\)\)/,
    );
    expect((await read('/etc/passwd')).content).toMatch(/outside the granted roots/);
    expect((await read('notes.txt')).content).toMatch(/must be absolute/);
  });

  it('a symlink leading out of the root is refused', async () => {
    const r = await read('/data/escape.txt');
    expect(r.is_error).toBe(true);
    expect(r.content).toMatch(
      /\(denied\): file path "\/data\/escape\.txt" resolves outside its root \/data \(through a symlink\)/,
    );
    expect((await read('/data/escape-dir/secret.txt')).content).toMatch(/resolves outside its root/);
    expect(r.content).not.toContain('TOP SECRET');
  });

  it('a missing file is an io_error, and the server keeps answering', async () => {
    expect((await read('/data/nope.txt')).content).toMatch(/\(io_error\): file "\/data\/nope\.txt" does not exist/);
    expect(await read('/data/notes.txt')).toEqual({ content: 'hello from the sandbox' });
  });

  it('without the operator mapping the root, nothing is readable', async () => {
    const ungranted = WasmToolServer.load(EXAMPLE_DIR);
    expect(ungranted.warnings.map((w) => w.message).join('\n')).toMatch(
      /asks for \/data \(read\), which the operator has not mapped/,
    );
    const r = await ungranted.tools
      .find((t) => t.name === 'text.read_file')!
      .invoke({ path: '/data/notes.txt' }, ctx());
    expect(r.content).toMatch(/\(denied\): file access is not granted to this tool server/);
  });
});

describe('writes', () => {
  const WRITE_WAT = (path: string) => `(module ${EXTISM_IMPORTS}
    (import "extism:host/user" "caxton_file_write" (func $write (param i64 i64)))
    (memory (export "memory") 1)
    (data (i32.const 0) "${path}")
    (func $str (param $off i32) (param $len i32) (result i64) (local $p i64) (local $i i32)
      (local.set $p (call $alloc (i64.extend_i32_u (local.get $len))))
      (block $done (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (call $store_u8 (i64.add (local.get $p) (i64.extend_i32_u (local.get $i))) (i32.load8_u (i32.add (local.get $off) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
      (local.get $p))
    (func (export "write") (result i32)
      (call $write (call $str (i32.const 0) (i32.const ${path.length})) (call $str (i32.const 0) (i32.const 4)))
      (i32.const 0)))`;

  it('writes under a writable root; refuses read-only roots and symlinked targets', async () => {
    const out = join(base, 'out');
    mkdirSync(out);
    symlinkSync(join(base, 'secret.txt'), join(out, 'link.txt'));
    const perms = '[permissions.paths]\n"/out" = "write"\n"/data" = "read"\n';
    const grants = { paths: { '/out': out, '/data': dataDir } };
    const ok = await server('w1', ['write'], WRITE_WAT('/out/new.txt'), perms, { grants });
    expect(await ok.tools[0]!.invoke({}, ctx())).toEqual({ content: '' });
    expect(readFileSync(join(out, 'new.txt'), 'utf8')).toBe('/out');

    const ro = await server('w2', ['write'], WRITE_WAT('/data/new.txt'), perms, { grants });
    expect((await ro.tools[0]!.invoke({}, ctx())).content).toMatch(
      /\(denied\): file path "\/data\/new\.txt" is under the read-only root \/data/,
    );

    const link = await server('w3', ['write'], WRITE_WAT('/out/link.txt'), perms, { grants });
    expect((await link.tools[0]!.invoke({}, ctx())).content).toMatch(
      /resolves outside its root \/out \(through a symlink\)/,
    );
    expect(readFileSync(join(base, 'secret.txt'), 'utf8')).toBe('TOP SECRET');
  });
});

describe('FileAccess', () => {
  it('picks the longest matching root', () => {
    const a = new FileAccess([
      { guest: '/data', host: dataDir, access: 'read' },
      { guest: '/data/sub', host: join(dataDir, 'sub'), access: 'write' },
    ]);
    expect(new TextDecoder().decode(a.read('/data/sub/deep.txt', 100))).toBe('deep');
    expect(() => a.write('/data/x.txt', new Uint8Array(1))).toThrow(/read-only root \/data/);
    expect(() => a.read('/database/x', 10)).toThrow(/outside the granted roots/);
  });

  it('refuses files above the size limit', () => {
    const a = new FileAccess([{ guest: '/data', host: dataDir, access: 'read' }]);
    expect(() => a.read('/data/notes.txt', 5)).toThrow(/is 22 bytes, above the limit of 5/);
  });
});
