/**
 * The command line of workspace.bash read as the shell reads it (ADR 0123): parsed as POSIX sh,
 * the language of the `/bin/sh -c` that runs it, by mvdan/sh (the `mvdan-sh` package), into a
 * syntax tree. Every simple command anywhere in the tree — in a pipeline, a list, a subshell, a
 * `{ }` group, a function body, a loop, a command substitution, an unquoted here-document's body —
 * is named with where it is, so the allowlist judges each one. A here-document's text, quoted
 * words and variables are data. What the tree cannot name is refused: a command whose name is
 * computed (`$X args`), and assignments to the variables that decide which program runs (PATH,
 * IFS, LD_*...).
 *
 * The parse runs on one long-lived worker thread, stopped at a deadline: a hostile line costs
 * that much time and no more, and a line nested deep enough to exhaust the parser's stack ends in
 * a refusal on the worker instead of a stack overflow on the server's thread. Lines are at most
 * 16 KiB.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type * as workerThreads from 'node:worker_threads';

export const MAX_COMMAND_BYTES = 16 * 1024;
/** How long one parse may take on the worker before it is stopped. */
export const PARSE_TIMEOUT_MS = 2_000;
/** How long the worker may take to start and load the parser (a loaded machine can be slow). */
const START_TIMEOUT_MS = 30_000;

/** One simple command of the line: its program name and where it stands. */
export interface ShellCommand {
  name: string;
  /** The arguments; one whose value is known only when the line runs (`$X`, `$(...)`) is DYNAMIC_WORD. */
  args: string[];
  /** `command`, or the construct it is inside: `subshell`, `command substitution`, `here-document`, `group`, `function`. */
  within: string;
  line: number;
  column: number;
}

/**
 * Stands for an argument whose value is known only when the line runs: a permission rule must
 * judge `git $C` as possibly `git push` (deny, ask), never as surely anything (allow).
 */
export const DYNAMIC_WORD = '\u0000';

export type ShellInspection = { commands: ShellCommand[] } | { refused: string };

/** The subset of mvdan-sh's GopherJS API used here (and by the test that checks `partsAtLeast` against it). */
export interface ShNode {
  [k: string]: unknown;
  Pos(): { Line(): number; Col(): number };
}
export interface ShSyntax {
  NewParser(...opts: unknown[]): { Parse(src: string, name: string): ShNode };
  Variant(v: unknown): unknown;
  LangPOSIX: unknown;
  Walk(node: ShNode, f: (n: ShNode | null) => boolean): void;
  NodeType(n: ShNode): string;
}

/**
 * A lower bound on the syntax nodes the parse of `line` makes, counted in one pass over its text:
 * each quoted string, expansion and unquoted run of literal text is at least one node. The parser
 * (GopherJS) spends about 0.1 ms per such piece, so a 16 KiB line of `"a"` pieces would take a
 * second or more, while any line the walk below accepts has at most its node limit: a line whose
 * bound is over that limit is refused before it is parsed, with the walk's own reason. Where the
 * count cannot tell (a comment, a quoted here-document's body) it counts nothing, so it never
 * exceeds the parse's true count (test/tools/workspace/shell.test.ts checks this against the parser).
 * Sent to the worker as source text like `inspectWith`: it uses nothing from this module's scope.
 */
export function partsAtLeast(line: string): number {
  const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n';
  const OPERATOR = '|&;<>()';
  // What may follow `$` to make an expansion: a name, a special parameter, `{` or `(`.
  const EXPANDS = /[A-Za-z0-9_{(@*#?$!-]/;
  let n = 0;
  let i = 0;
  let inRun = false;
  // Here-documents whose bodies start after the current line: their delimiter and whether it was quoted.
  const pending: { delim: string; strip: boolean; quoted: boolean }[] = [];
  /** Expansions in an unquoted here-document's body line: each `$x` and backquote pair is a node. */
  const bodyExpansions = (text: string) => {
    let k = 0;
    for (let j = 0; j < text.length; j++) {
      const c = text[j]!;
      if (c === '\\') j++;
      else if (c === '$' && EXPANDS.test(text[j + 1] ?? '')) k++;
      else if (c === '`') {
        k++;
        const close = text.indexOf('`', j + 1);
        if (close < 0) break;
        j = close;
      }
    }
    return k;
  };
  /** Where the `}` closing the `${` at `open` is (or the end): what is inside is not counted. */
  const closingBrace = (open: number) => {
    let depth = 0;
    for (let j = open; j < line.length; j++) {
      if (line[j] === '{') depth++;
      else if (line[j] === '}' && --depth === 0) return j;
    }
    return line.length;
  };
  while (i < line.length) {
    const c = line[i]!;
    // A backslash before a newline joins the lines: it is no text at all.
    if (c === '\\' && line[i + 1] === '\n') {
      i += 2;
      continue;
    }
    if (c === '\n' && pending.length > 0) {
      i++;
      for (const h of pending) {
        while (i < line.length) {
          const eol = line.indexOf('\n', i);
          const end = eol < 0 ? line.length : eol;
          let text = line.slice(i, end);
          i = end + 1;
          if (h.strip) text = text.replace(/^\t+/, '');
          if (text === h.delim) break;
          if (!h.quoted) n += bodyExpansions(text);
        }
      }
      pending.length = 0;
      inRun = false;
      continue;
    }
    if (isSpace(c)) {
      inRun = false;
      i++;
      continue;
    }
    if (c === '#') {
      // Possibly a comment (the parser also starts one right after an expansion): not counted, and
      // where a here-document could start on it the count ends, as its body cannot be told apart.
      const eol = line.indexOf('\n', i);
      const end = eol < 0 ? line.length : eol;
      if (line.slice(i, end).includes('<<')) return n;
      i = end;
      continue;
    }
    if (c === '<' && line[i + 1] === '<' && line[i + 2] !== '<') {
      // A here-document: its delimiter word, quoted when any of it is.
      let j = i + 2;
      const strip = line[j] === '-';
      if (strip) j++;
      while (line[j] === ' ' || line[j] === '\t') j++;
      let word = '';
      while (j < line.length && !isSpace(line[j]!) && !OPERATOR.includes(line[j]!)) word += line[j++];
      const quoted = /['"\\]/.test(word);
      pending.push({ delim: word.replace(/['"\\]/g, ''), strip, quoted });
      n++;
      inRun = false;
      i = j;
      continue;
    }
    if (OPERATOR.includes(c)) {
      inRun = false;
      i++;
      continue;
    }
    // A single-quoted string, or a command substitution in backquotes: one node at least.
    if (c === "'" || c === '`') {
      const close = line.indexOf(c, i + 1);
      if (close < 0) return n;
      n++;
      inRun = false;
      i = close + 1;
      continue;
    }
    if (c === '"') {
      n++;
      i++;
      let innerRun = false;
      while (i < line.length && line[i] !== '"') {
        const d = line[i]!;
        if (d === '\\' && line[i + 1] === '\n') i++;
        else if (d === '$' && EXPANDS.test(line[i + 1] ?? '')) {
          n++;
          innerRun = false;
          if (line[i + 1] === '{') i = closingBrace(i + 1);
        } else if (d === '`') {
          n++;
          innerRun = false;
          const close = line.indexOf('`', i + 1);
          if (close < 0) return n;
          i = close;
        } else {
          if (!innerRun) n++;
          innerRun = true;
          if (d === '\\') i++;
        }
        i++;
      }
      inRun = false;
      i++;
      continue;
    }
    if (c === '$' && EXPANDS.test(line[i + 1] ?? '')) {
      n++;
      inRun = false;
      i = line[i + 1] === '{' ? closingBrace(i + 1) + 1 : i + 1;
      continue;
    }
    if (!inRun) n++;
    inRun = true;
    if (c === '\\') i++;
    i++;
  }
  return n;
}

/**
 * The inspection itself. It is also sent to the worker as source text (Function.prototype.toString),
 * so it must use nothing from this module's scope: the parser arrives as `syntax`, and the count of
 * `partsAtLeast` as `atLeast`.
 */
function inspectWith(syntax: ShSyntax, line: string, atLeast: (line: string) => number): ShellInspection {
  const PROTECTED = /^(PATH|IFS|ENV|BASH_ENV|CDPATH|SHELLOPTS|BASHOPTS|PS4|PROMPT_COMMAND|LD_[A-Za-z0-9_]*)$/;
  const DECLARE = new Set(['export', 'readonly', 'local', 'declare', 'typeset']);
  const WITHIN: Record<string, string> = {
    Subshell: 'subshell',
    CmdSubst: 'command substitution',
    ProcSubst: 'process substitution',
    Block: 'group',
    FuncDecl: 'function',
  };
  const unescape = (s: string, quoted: boolean) =>
    quoted
      ? s.replace(/\\([$`"\\\n])/g, (_m, c: string) => (c === '\n' ? '' : c))
      : s.replace(/\\(.)/gs, (_m, c: string) => (c === '\n' ? '' : c));
  /** A word's value when it is only literal text and quotes; undefined when it expands something. */
  const literal = (word: ShNode): string | undefined => {
    let out = '';
    for (const part of word.Parts as ShNode[]) {
      const type = syntax.NodeType(part);
      if (type === 'Lit') out += unescape(part.Value as string, false);
      else if (type === 'SglQuoted') out += part.Value as string;
      else if (type === 'DblQuoted') {
        for (const inner of part.Parts as ShNode[]) {
          if (syntax.NodeType(inner) !== 'Lit') return undefined;
          out += unescape(inner.Value as string, true);
        }
      } else return undefined;
    }
    return out;
  };
  const source = (node: ShNode) => {
    const p = node.Pos();
    return `line ${p.Line()}, column ${p.Col()}`;
  };
  // The parser's time grows with the words of a line more than with its bytes: past 2,000 it is not asked.
  const words = line.match(/\S+/g)?.length ?? 0;
  if (words > 2_000)
    return {
      refused: `${words} words (at most 2,000 are checked; split the command, or write long text with workspace.write)`,
    };
  const MAX_NODES = 2_000;
  const tooMany = `more than ${MAX_NODES} parts (words, commands and their pieces) to check; split the command`;
  if (atLeast(line) > MAX_NODES) return { refused: tooMany };
  let file: ShNode;
  try {
    file = syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(line, '');
  } catch (e) {
    if (e instanceof RangeError) return { refused: 'constructs nested too deeply to check' };
    const err = e as { Error?: () => string; message?: string };
    const text = typeof err.Error === 'function' ? err.Error() : String(err.message ?? e);
    return { refused: `a syntax error at ${text.replace(/^(\d+):(\d+): /, 'line $1, column $2: ')}` };
  }
  let nodes = 0;
  const commands: ShellCommand[] = [];
  const stack: string[] = [];
  let refused: string | undefined;
  try {
    syntax.Walk(file, (node) => {
      if (node === null) {
        stack.pop();
        return true;
      }
      if (refused !== undefined) return false;
      // The walk costs far more per word than the parse: a line of thousands of words is refused, not walked.
      if (++nodes > MAX_NODES) {
        refused = tooMany;
        return false;
      }
      const type = syntax.NodeType(node);
      let within = WITHIN[type];
      if (type === 'Redirect' && node.Hdoc) within = 'here-document';
      // A function's body is a group: it is named as the function.
      if (type === 'Block' && stack.findLast((w) => w !== '') === 'function') within = 'function';
      stack.push(within ?? '');
      if (type === 'Assign') {
        const name = (node.Name as ShNode | null)?.Value as string | undefined;
        if (name !== undefined && PROTECTED.test(name))
          refused = `an assignment to ${name} at ${source(node)} (it decides which program runs)`;
      } else if (type === 'CoprocClause') refused = `a coprocess at ${source(node)}`;
      else if (type === 'CallExpr') {
        const args = node.Args as ShNode[];
        if (args.length === 0) return true;
        const name = literal(args[0]!);
        if (name === undefined) {
          refused = `a command whose name is computed at ${source(node)} (its program cannot be known before it runs)`;
          return false;
        }
        // DYNAMIC_WORD, spelled out here: this function runs on the worker from its source text.
        const values = args.slice(1).map((a) => literal(a) ?? '\u0000');
        if (DECLARE.has(name))
          for (const v of values) {
            const m = /^([A-Za-z_][A-Za-z0-9_]*)(=|$)/.exec(v);
            if (m && PROTECTED.test(m[1]!) && m[2] === '=')
              refused = `an assignment to ${m[1]} at ${source(node)} (it decides which program runs)`;
          }
        const where = [...stack].reverse().find((w) => w !== '') ?? 'command';
        const pos = node.Pos();
        commands.push({ name, args: values, within: where, line: pos.Line(), column: pos.Col() });
      }
      return refused === undefined;
    });
  } catch (e) {
    if (e instanceof RangeError) return { refused: 'constructs nested too deeply to check' };
    throw e;
  }
  return refused !== undefined ? { refused } : { commands };
}

const requireHere = createRequire(import.meta.url);
let inThread: ShSyntax | undefined;

/** The inspection on the calling thread: for tests and fuzzing, which bound the input themselves. */
export function inspectCommandLine(line: string): ShellInspection {
  if (Buffer.byteLength(line) > MAX_COMMAND_BYTES) return { refused: 'a command longer than 16 KiB' };
  inThread ??= (requireHere('mvdan-sh') as { syntax: ShSyntax }).syntax;
  return inspectWith(inThread, line, partsAtLeast);
}

/** The worker's body: loads the parser once, then answers each line. Sent as source text. */
function shellWorker(inspect: typeof inspectWith, atLeast: typeof partsAtLeast, parserPath: string): void {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const { parentPort } = require('node:worker_threads') as typeof workerThreads;
  const { syntax } = require(parserPath) as { syntax: ShSyntax };
  /* eslint-enable @typescript-eslint/no-require-imports */
  parentPort!.postMessage({ ready: true });
  parentPort!.on('message', (m: { id: number; line: string }) => {
    let result: ShellInspection;
    try {
      result = inspect(syntax, m.line, atLeast);
    } catch (e) {
      result = { refused: `a line the parser could not read (${e instanceof Error ? e.message : String(e)})` };
    }
    parentPort!.postMessage({ id: m.id, result });
  });
}

/** One worker for the process; lines queue on it one at a time. */
class ShellParser {
  #worker: { w: Worker; ready: Promise<string | undefined> } | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #next = 1;

  inspect(line: string, timeoutMs: number): Promise<ShellInspection> {
    if (Buffer.byteLength(line) > MAX_COMMAND_BYTES)
      return Promise.resolve({ refused: 'a command longer than 16 KiB' });
    const run = this.#queue.then(() => this.#once(line, timeoutMs));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** The worker, and when it has loaded the parser (its start is not counted in a parse's time): undefined, or why it could not. */
  #ensure(): { w: Worker; ready: Promise<string | undefined> } {
    if (this.#worker) return this.#worker;
    const source = `(${shellWorker.toString()})(${inspectWith.toString()}, ${partsAtLeast.toString()}, ${JSON.stringify(requireHere.resolve('mvdan-sh'))})`;
    const w = new Worker(source, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 128, stackSizeMb: 4 } });
    const ready = new Promise<string | undefined>((resolve) => {
      const timer = setTimeout(() => resolve('the parser did not start in time'), START_TIMEOUT_MS);
      w.once('message', () => {
        clearTimeout(timer);
        resolve(undefined);
      });
      w.once('error', (e) => {
        clearTimeout(timer);
        resolve(e.message);
      });
    });
    w.once('exit', () => {
      if (this.#worker?.w === w) this.#worker = undefined;
    });
    this.#worker = { w, ready };
    return this.#worker;
  }

  async #once(line: string, timeoutMs: number): Promise<ShellInspection> {
    const { w, ready } = this.#ensure();
    w.ref();
    const failed = await ready;
    if (failed !== undefined) {
      if (this.#worker?.w === w) this.#worker = undefined;
      void w.terminate();
      return { refused: `a line the parser could not read (${failed})` };
    }
    const id = this.#next++;
    return new Promise((resolve) => {
      const done = (r: ShellInspection) => {
        clearTimeout(timer);
        w.off('message', onMessage);
        w.off('error', onError);
        w.off('exit', onExit);
        w.unref();
        resolve(r);
      };
      const onMessage = (m: { id: number; result: ShellInspection }) => {
        if (m.id === id) done(m.result);
      };
      const onError = (e: Error) => done({ refused: `a line the parser could not read (${e.message})` });
      const onExit = () => done({ refused: 'a line the parser could not read (the parser stopped)' });
      const timer = setTimeout(() => {
        if (this.#worker?.w === w) this.#worker = undefined;
        void w.terminate();
        done({ refused: `a line that took longer than ${timeoutMs} ms to parse` });
      }, timeoutMs);
      w.on('message', onMessage);
      w.once('error', onError);
      w.once('exit', onExit);
      w.postMessage({ id, line });
    });
  }
}

const parser = new ShellParser();

/** The commands of `line`, parsed on the worker within `timeoutMs`, or why it is refused. */
export function parseCommandLine(line: string, timeoutMs = PARSE_TIMEOUT_MS): Promise<ShellInspection> {
  return parser.inspect(line, timeoutMs);
}
