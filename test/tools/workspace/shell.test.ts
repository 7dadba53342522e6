/**
 * workspace.bash's command line read as the shell reads it: parsed as POSIX sh into a tree, every
 * command in it (pipelines, lists, subshells, groups, loops, functions, command substitutions,
 * unquoted here-document bodies) checked against the allowlist and refused by its own name, a
 * here-document's text and variables taken as data, the parse bounded in size and time. Then the
 * lines run for real in bubblewrap.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  checkAllowlist,
  inspectCommandLine,
  parseCommandLine,
  partsAtLeast,
  type ShNode,
  type ShSyntax,
} from '../../../src/tools/workspace/index.js';
import { hasSystem } from '../../helpers/system.js';
import { ctx, tempDir, tools } from './helpers.js';

const allowed = ['ls', 'cat', 'grep', 'wc', 'echo', 'cd', 'sort', 'head'];

describe('the command line parse', () => {
  it('names every simple command, with where it stands', async () => {
    const r = await parseCommandLine(`ls -la | grep 'a b' && wc -l < x.txt; echo "done" > out 2>&1`);
    expect('commands' in r && r.commands.map((c) => [c.name, ...c.args])).toEqual([
      ['ls', '-la'],
      ['grep', 'a b'],
      ['wc', '-l'],
      ['echo', 'done'],
    ]);
    const sub = await parseCommandLine('(cd x; ls)\necho $(cat f) `sort g`');
    expect('commands' in sub && sub.commands.map((c) => `${c.name}@${c.within}:${c.line}.${c.column}`)).toEqual([
      'cd@subshell:1.2',
      'ls@subshell:1.8',
      'echo@command:2.1',
      'cat@command substitution:2.8',
      'sort@command substitution:2.16',
    ]);
  });

  it('reads a here-document body as data, and checks the commands an unquoted one substitutes', async () => {
    expect(await checkAllowlist('cat <<EOF2\nhi\nEOF2', allowed)).toBeUndefined();
    expect(await checkAllowlist("cat <<'EOF'\nrm -rf / $(rm x)\nEOF", allowed)).toBeUndefined();
    expect(await checkAllowlist('cat <<EOF\nrm -rf /\nEOF\nls', allowed)).toBeUndefined();
    const refused = await checkAllowlist('cat <<EOF\nnothing $(rm -rf x) here\nEOF', allowed);
    expect(refused).toContain('"rm" (inside a command substitution, line 2, column 11) is not allowed');
  });

  it('accepts variables, background jobs, lists, pipelines, subshells and groups of allowed commands', async () => {
    for (const c of [
      'echo $HOME',
      'echo "${HOME:-/tmp}" ${#HOME}',
      'ls && cat x | wc -l',
      '(cd x; ls)',
      '{ ls; cat y; } > out',
      'ls &',
      'X=1 ls',
      'for f in a b; do cat "$f"; done',
      'if ls x; then echo yes; else echo no; fi',
      'echo $((1 + 2))',
      '# only a comment\nls',
    ]) {
      expect(await checkAllowlist(c, allowed), c).toBeUndefined();
    }
  });

  it('refuses an unlisted command anywhere in the tree, by its own name', async () => {
    const cases: [string, string][] = [
      ['ls | rm -rf x', '"rm" is not allowed'],
      ['ls; curl http://x', '"curl" is not allowed'],
      ['ls || /bin/rm x', '"/bin/rm" is not allowed'],
      ["'r'm x", '"rm" is not allowed'],
      ['\\rm x', '"rm" is not allowed'],
      ['ls\nrm x', '"rm" is not allowed'],
      ['(cd x; rm y)', '"rm" (inside a subshell, line 1, column 8)'],
      ['echo $(curl x)', '"curl" (inside a command substitution'],
      ['echo "`id`"', '"id" (inside a command substitution'],
      ['echo "${X:-$(id)}"', '"id" (inside a command substitution'],
      ['{ ls; rm x; }', '"rm" (inside a group'],
      ['f() { rm x; }', '"rm" (inside a function'],
      ['for i in a; do rm $i; done', '"rm" is not allowed'],
      ['ls & rm x', '"rm" is not allowed'],
    ];
    for (const [c, want] of cases) {
      const r = await checkAllowlist(c, allowed);
      expect(r, c).toContain(want);
      expect(r, c).toContain('[workspace.bash] commands');
    }
  });

  it('refuses what it cannot name: computed command names, assignments that choose the program, syntax errors', async () => {
    const cases: [string, RegExp][] = [
      ['$CMD x', /a command whose name is computed at line 1, column 1/],
      ['$(echo rm) x', /a command whose name is computed/],
      ['PATH=. ls', /an assignment to PATH/],
      ['IFS=/ ls', /an assignment to IFS/],
      ['LD_PRELOAD=/x.so ls', /an assignment to LD_PRELOAD/],
      ["echo 'unterminated", /a syntax error at line 1, column 6: reached EOF without closing quote/],
      ['ls <(rm x)', /a syntax error at line 1/],
      ['cat <<EOF\nno end', /a syntax error at line 1, column 5: unclosed here-document/],
    ];
    for (const [c, want] of cases) expect(await checkAllowlist(c, allowed), c).toMatch(want);
    expect(await checkAllowlist('export PATH=.', [...allowed, 'export'])).toMatch(/an assignment to PATH/);
    expect(await checkAllowlist('   \n# nothing', allowed)).toBe('the command is empty');
  });

  it('bounds the parse: 16 KiB of input, nesting that would exhaust the stack, and time', async () => {
    expect(await checkAllowlist('ls '.repeat(6000), allowed)).toContain('a command longer than 16 KiB');
    const deep = '('.repeat(8000) + 'ls' + ')'.repeat(8000);
    expect(await checkAllowlist(deep, allowed)).toContain('nested too deeply');
    expect(inspectCommandLine(deep)).toMatchObject({ refused: expect.stringMatching(/too deeply|longer than/) });
    // A deadline the parse cannot meet stops the worker; the next line gets a new one.
    expect(await checkAllowlist('echo' + ' x'.repeat(2500), allowed)).toContain(
      '2501 words (at most 2,000 are checked',
    );
    expect(await parseCommandLine('ls | '.repeat(900) + 'ls', 0)).toEqual({
      refused: 'a line that took longer than 0 ms to parse',
    });
    expect(await checkAllowlist('ls && cat x', allowed)).toBeUndefined();
  });

  it('refuses a line of thousands of quoted pieces before parsing it, and never a line the walk accepts', () => {
    // One word of 3,168 quoted pieces: the parser alone took a second of CPU on it.
    const pieces = '{"a":'.repeat(3168) + '1';
    expect(partsAtLeast(pieces)).toBe(3 * 3168 + 1);
    expect(inspectCommandLine(pieces)).toEqual({
      refused: 'more than 2000 parts (words, commands and their pieces) to check; split the command',
    });
    // Text that only looks like pieces stays one piece: quotes in a comment, in a quoted
    // here-document's body, inside single quotes.
    const quiet = '"a"'.repeat(3000);
    expect(partsAtLeast(`ls # ${quiet}`)).toBe(1);
    expect(partsAtLeast(`cat <<'E'\n${quiet}\nE\nls`)).toBe(3);
    expect(partsAtLeast(`echo '${quiet}'`)).toBe(2);
    expect(inspectCommandLine(`cat <<'E'\n${quiet}\nE\nls`)).toMatchObject({
      commands: [{ name: 'cat' }, { name: 'ls' }],
    });

    // The bound is a lower bound on the parse's own node count, for lines of every construct.
    const syntax = (createRequire(import.meta.url)('mvdan-sh') as { syntax: ShSyntax }).syntax;
    const nodesOf = (line: string): number | undefined => {
      let file: ShNode;
      try {
        file = syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(line, '');
      } catch {
        return undefined;
      }
      let n = 0;
      syntax.Walk(file, (node) => {
        if (node !== null) n++;
        return true;
      });
      return n;
    };
    const piece = fc.constantFrom(
      'ls',
      ' ',
      '\n',
      '\t',
      '|',
      '&&',
      ';',
      "'a b'",
      "'",
      '"x $y z"',
      '"',
      '"a\\"b"',
      '\\',
      '\\"',
      '$a',
      '${a:-"b"}',
      '$(ls "x")',
      '`ls`',
      '$((1+2))',
      '>',
      '2>&1',
      '<(ls)',
      '<<E\n$a "b" `c`\nE\n',
      '<<\'E\'\n$a "b"\nE\n',
      '<<-E\n\t$x\n\tE\n',
      '#',
      'a=b',
      '{ ls; }',
      '(ls)',
      'if a; then b; fi',
      'for i in a b; do c; done',
      'case x in a) b;; esac',
      'f() { g; }',
      '{"a":',
      '}',
      'x',
      '\\\n',
      '$#',
      '${#a}',
      '<<',
      'E',
      '$',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 60 }), (pieces) => {
        const line = pieces.join('');
        const nodes = nodesOf(line);
        if (nodes !== undefined) expect(partsAtLeast(line), line).toBeLessThanOrEqual(nodes);
      }),
      { numRuns: 3000, seed: 67 },
    );
  });
});

describe.skipIf(!hasSystem('bwrap'))('the parsed lines run in the sandbox', () => {
  let root: string;
  beforeAll(() => {
    root = tempDir();
    mkdirSync(join(root, 'x'));
    writeFileSync(join(root, 'x', 'inner.txt'), 'inner\n');
    writeFileSync(join(root, 'a.txt'), 'b\na\n');
  });
  const bash = () =>
    tools({ path: root, write: true, bash: { enabled: true, commands: [...allowed, 'touch', 'wait'] } })('bash');

  it('runs a heredoc, $HOME, a && b | c, (cd x; ls) and a background job', async () => {
    expect(await bash().invoke({ command: 'cat <<EOF2\nhi\nEOF2' }, ctx())).toEqual({ content: 'hi' });
    expect(await bash().invoke({ command: 'echo $HOME' }, ctx())).toEqual({ content: '/tmp' });
    expect(await bash().invoke({ command: 'cat <<EOF\nhome=$HOME\nEOF' }, ctx())).toEqual({ content: 'home=/tmp' });
    expect(await bash().invoke({ command: 'ls x && cat a.txt | sort' }, ctx())).toEqual({
      content: 'inner.txt\na\nb',
    });
    expect(await bash().invoke({ command: '(cd x; ls); ls -d x' }, ctx())).toEqual({ content: 'inner.txt\nx' });
    expect(await bash().invoke({ command: 'echo bg > bg.txt & wait; cat bg.txt' }, ctx())).toMatchObject({
      content: expect.stringContaining('bg'),
    });
  });

  it('refuses an unlisted command in a subshell or a substitution by name, and runs nothing of the line', async () => {
    const sub = await bash().invoke({ command: 'touch ran1; (cd x; rm inner.txt)' }, ctx());
    expect(sub).toMatchObject({ is_error: true, content: expect.stringContaining('"rm" (inside a subshell') });
    const cs = await bash().invoke({ command: 'touch ran2; cat <<EOF\n$(rm a.txt)\nEOF' }, ctx());
    expect(cs).toMatchObject({
      is_error: true,
      content: expect.stringContaining('"rm" (inside a command substitution'),
    });
    expect(existsSync(join(root, 'ran1'))).toBe(false);
    expect(existsSync(join(root, 'ran2'))).toBe(false);
    expect(existsSync(join(root, 'x', 'inner.txt'))).toBe(true);
    expect(existsSync(join(root, 'a.txt'))).toBe(true);
  });
});
