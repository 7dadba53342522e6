/**
 * workspace.grep against a real tree: ripgrep's output modes as Claude Code's Grep gives them,
 * its filters and context, head_limit and offset, multiline, and a catastrophic pattern stopped
 * at the deadline in its worker thread while the server's thread stays free.
 */
import { mkdirSync, writeFileSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ctx, tempDir, tools } from './helpers.js';

let root: string;
let grep: ReturnType<ReturnType<typeof tools>>;
beforeAll(() => {
  root = tempDir();
  mkdirSync(join(root, 'src'));
  mkdirSync(join(root, 'node_modules/x'), { recursive: true });
  writeFileSync(
    join(root, 'src/a.ts'),
    'import x from "y";\n// TODO: first\nconst a = 1;\n// todo: second\nexport {};\n',
  );
  writeFileSync(join(root, 'src/b.py'), 'def f():\n    # TODO: third\n    return 1\n');
  writeFileSync(join(root, 'notes.md'), 'nothing here\n');
  writeFileSync(join(root, 'node_modules/x/i.js'), '// TODO: vendored\n');
  writeFileSync(join(root, '.hidden'), 'TODO hidden\n');
  utimesSync(join(root, 'src/a.ts'), new Date(2000), new Date(2000));
  utimesSync(join(root, 'src/b.py'), new Date(3000), new Date(3000));
  grep = tools({ path: root })('grep');
});

describe('workspace.grep', () => {
  it('files_with_matches (the default): newest first, hidden and node_modules skipped', async () => {
    const r = await grep.invoke({ pattern: 'TODO' }, ctx());
    expect(r.content).toBe(`Found 2 files\n${join(root, 'src/b.py')}\n${join(root, 'src/a.ts')}`);
  });

  it('content with line numbers (default) and -i; "No matches found"', async () => {
    const r = await grep.invoke({ pattern: 'todo:', output_mode: 'content', '-i': true, path: 'src/a.ts' }, ctx());
    const f = join(root, 'src/a.ts');
    expect(r.content).toBe(`${f}:2:// TODO: first\n${f}:4:// todo: second`);
    const none = await grep.invoke({ pattern: 'zzz', output_mode: 'content' }, ctx());
    expect(none.content).toBe('No matches found');
  });

  it('context -B/-A/-C with "-" for context lines and "--" between groups; -n false', async () => {
    const f = join(root, 'src/a.ts');
    const r = await grep.invoke(
      { pattern: 'TODO|todo', output_mode: 'content', path: 'src/a.ts', '-A': 0, '-B': 1 },
      ctx(),
    );
    expect(r.content).toBe(
      `${f}-1-import x from "y";\n${f}:2:// TODO: first\n${f}-3-const a = 1;\n${f}:4:// todo: second`,
    );
    const apart = await grep.invoke(
      { pattern: '^import|^export', output_mode: 'content', path: 'src/a.ts', '-A': 1 },
      ctx(),
    );
    expect(apart.content).toBe(`${f}:1:import x from "y";\n${f}-2-// TODO: first\n--\n${f}:5:export {};`);
    const noN = await grep.invoke({ pattern: 'first', output_mode: 'content', path: 'src', '-n': false }, ctx());
    expect(noN.content).toBe(`${f}:// TODO: first`);
    const c = await grep.invoke({ pattern: 'const', output_mode: 'content', path: 'src/a.ts', '-C': 1 }, ctx());
    expect(c.content.split('\n')).toHaveLength(3);
  });

  it('a path that is not there: "Path does not exist: PATH", as given, as Claude Code says it', async () => {
    expect(await grep.invoke({ pattern: 'TODO', path: 'src/gone.ts' }, ctx())).toEqual({
      content: 'Path does not exist: src/gone.ts',
      is_error: true,
    });
    const gone = join(root, 'gone');
    expect(await grep.invoke({ pattern: 'TODO', path: gone }, ctx())).toEqual({
      content: `Path does not exist: ${gone}`,
      is_error: true,
    });
  });

  it('count mode, glob and type filters', async () => {
    const r = await grep.invoke({ pattern: 'TODO', output_mode: 'count', '-i': true }, ctx());
    expect(r.content).toContain(`${join(root, 'src/a.ts')}:2`);
    expect(r.content).toContain(`${join(root, 'src/b.py')}:1`);
    expect(r.content).toContain('Found 3 total occurrences across 2 files.');
    expect((await grep.invoke({ pattern: 'TODO', glob: '*.py' }, ctx())).content).toBe(
      `Found 1 file\n${join(root, 'src/b.py')}`,
    );
    expect((await grep.invoke({ pattern: 'TODO', type: 'ts' }, ctx())).content).toBe(
      `Found 1 file\n${join(root, 'src/a.ts')}`,
    );
    expect((await grep.invoke({ pattern: 'TODO', type: 'nope' }, ctx())).is_error).toBe(true);
  });

  it('head_limit and offset page through the results', async () => {
    const r = await grep.invoke(
      { pattern: '.', output_mode: 'content', path: 'src/a.ts', head_limit: 2, offset: 1 },
      ctx(),
    );
    const f = join(root, 'src/a.ts');
    expect(r.content).toBe(
      `${f}:2:// TODO: first\n${f}:3:const a = 1;\n(results limited to 2 lines: use offset=3 for more)`,
    );
  });

  it('multiline lets a pattern span lines', async () => {
    const r = await grep.invoke(
      { pattern: 'first.*const', multiline: true, output_mode: 'content', path: 'src/a.ts' },
      ctx(),
    );
    const f = join(root, 'src/a.ts');
    expect(r.content).toBe(`${f}:2:// TODO: first\n${f}:3:const a = 1;`);
    expect((await grep.invoke({ pattern: 'first.*const', path: 'src/a.ts' }, ctx())).content).toBe('No files found');
  });

  it('refuses an invalid regex, and stops a catastrophic one at the deadline without blocking the thread', async () => {
    expect((await grep.invoke({ pattern: '(unclosed' }, ctx())).content).toContain('invalid regular expression');
    const dir = tempDir();
    writeFileSync(join(dir, 'evil.txt'), 'a'.repeat(40) + '!\n');
    const evil = tools({ path: dir })('grep');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    const t0 = Date.now();
    const r = await evil.invoke({ pattern: '^(a+)+$' }, ctx({ deadline: Date.now() + 1500 }));
    clearInterval(timer);
    expect(r.is_error).toBe(true);
    expect(r.content).toContain('took longer than');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(ticks).toBeGreaterThan(20);
  });
});
