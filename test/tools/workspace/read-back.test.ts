/**
 * readWorkspaceFile: a file the tools wrote, read back for a result leaving the server (an A2A
 * task's files), under the same grant as workspace.read: bounded, a regular file only, no way out
 * through a link or `..`, never into the private data directory, and a read deny rule honoured.
 */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serverConfigSchema } from '../../../src/config/index.js';
import { readWorkspaceFile, workspaceGrant, WorkspaceError } from '../../../src/tools/workspace/index.js';
import { tempDir } from './helpers.js';

const grant = (workspace: Record<string, unknown>, privateDirs: string[] = []) =>
  workspaceGrant(serverConfigSchema.parse({ workspace }).workspace, privateDirs)!;

describe('readWorkspaceFile', () => {
  it('reads a file by its path below the root, and only its size past the bound', () => {
    const root = tempDir();
    mkdirSync(join(root, 'out'));
    writeFileSync(join(root, 'out', 'a.txt'), 'hello');
    const ws = grant({ path: root });
    const f = readWorkspaceFile(ws, join(root, 'out', 'a.txt'), 5)!;
    expect([f.relative, f.size, f.bytes?.toString()]).toEqual(['out/a.txt', 5, 'hello']);
    const big = readWorkspaceFile(ws, 'out/a.txt', 4)!;
    expect([big.size, big.bytes]).toEqual([5, undefined]);
    expect(readWorkspaceFile(ws, 'gone.txt', 10)).toBeUndefined();
  });

  it('refuses a way out, a directory, the data directory and a read deny rule', () => {
    const root = tempDir();
    const outside = tempDir('caxton-outside-');
    writeFileSync(join(outside, 'secret.txt'), 'TOP SECRET');
    symlinkSync(join(outside, 'secret.txt'), join(root, 'link.txt'));
    mkdirSync(join(root, 'data'));
    writeFileSync(join(root, 'data', 'keys'), 'k');
    writeFileSync(join(root, '.env'), 'X=1');
    const ws = grant({ path: root, permissions: { deny: ['Read(.env)'] } }, [join(root, 'data')]);
    for (const [p, why] of [
      ['link.txt', 'through a symbolic link'],
      ['../x', 'outside the workspace'],
      [join(outside, 'secret.txt'), 'outside the workspace'],
      ['data/keys', "server's data directory"],
      ['.env', '[workspace.permissions]'],
      ['.', 'is a directory'],
    ]) {
      expect(() => readWorkspaceFile(ws, p!, 100), p).toThrow(WorkspaceError);
      expect(() => readWorkspaceFile(ws, p!, 100), p).toThrow(why);
    }
    expect(workspaceGrant(serverConfigSchema.parse({}).workspace)).toBeUndefined();
  });
});
