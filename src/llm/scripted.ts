/**
 * The `scripted` provider: canned replies from a file, for offline tests, benchmarks and a demo
 * that needs no API key. Full description: docs/scripted-provider.md.
 *
 * Format (TOML shown; JSON has the same shape, chosen by the .toml / .json extension):
 *
 *   latency_ms = 0                    # optional delay before every reply (a rule may override)
 *   chunk_ms = 0                      # optional pause between streamed pieces (a paced, slow model)
 *   fallback = "No script for that."  # optional reply when no rule matches (else: error)
 *
 *   [[rules]]
 *   name = "weather"                  # optional, for messages
 *   match = "weather|forecast"        # optional JS regex, case-insensitive, on the latest user message
 *   [[rules.turns]]                   # turn 0: no assistant message yet
 *   tool_calls = [{ name = "http_client", arguments = { url = "https://wttr.in/{{request}}" } }]
 *   [[rules.turns]]                   # turn 1: one assistant message already
 *   content = "Forecast: {{tool_result.http_client}}"
 *
 *   [[rules]]                         # no match: matches everything
 *   content = "You said: {{request}}" # shorthand for one turn
 *
 * Selection is stateless: the first rule whose `match` finds the latest user message, then turn
 * number N = the count of assistant messages already in the request. Past the last turn the last
 * turn without tool calls repeats (or, when every turn calls tools, `fallback` or a fixed notice),
 * so a tool loop always ends. Placeholders in `content` and in string tool arguments:
 * `{{request}}`, `{{system}}` (all system messages), `{{last_tool_result}}`, `{{tool_results}}` (all, one per line),
 * `{{tool_result.NAME}}` (the latest result of tool NAME) and `{{match.N}}` (capture group N, 0-9, of the
 * rule's `match` in the request); unknown ones are rejected at load.
 * Usage is approximated as characters / 4 (at least 1). The file is cached and re-read when its
 * inode, modification time or size changes, checked on every call: an edit is seen by the very next
 * call, which tests that rewrite a script between two requests rely on.
 *
 * Reading and checking a script file (TOML parser, schema) lives in scripted-file.ts, imported
 * only when a file must be read: a worker thread or child process receives the script already
 * checked by the server (`ProviderConfig.script_checked`), so it loads neither.
 */
import { type Stats, statSync } from 'node:fs';
import { makeUsage } from './decode.js';
import { sleep } from './retry.js';
import {
  LlmError,
  type ChatMessage,
  type ChatRequest,
  type ChatResponse,
  type LlmProvider,
  type ProviderConfig,
  type StreamEvent,
  type ToolCall,
} from './types.js';

/** A script that passed the schema check (scripted-file.ts): plain data, structured-clone safe. */
export interface CheckedScript {
  latency_ms?: number | undefined;
  chunk_ms?: number | undefined;
  fallback?: string | undefined;
  rules: {
    name?: string | undefined;
    match?: string | undefined;
    latency_ms?: number | undefined;
    turns?: Turn[] | undefined;
    content?: string | undefined;
    tool_calls?: Turn['tool_calls'];
  }[];
}

interface Turn {
  content?: string | undefined;
  tool_calls?: { name: string; arguments: Record<string, unknown>; id?: string | undefined }[] | undefined;
}
interface CompiledRule {
  label: string;
  match: RegExp | undefined;
  latency_ms: number | undefined;
  turns: Turn[];
}
interface CompiledScript {
  latency_ms: number | undefined;
  chunk_ms: number | undefined;
  fallback: string | undefined;
  rules: CompiledRule[];
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][\w.:*-]*)\s*\}\}/g;
export const IN_MEMORY = '<in-memory script>';

export class ScriptedProvider implements LlmProvider {
  readonly type = 'scripted' as const;
  readonly defaultModel: string | undefined;
  private cache:
    { ino: number; mtimeMs: number; size: number; checked: CheckedScript; script: CompiledScript } | undefined;
  private readonly inline: CompiledScript | undefined;
  /** The script file's stat of this event-loop turn (cleared by an immediate): the calls of one turn share it. */
  private turnStat: Stats | undefined;
  private readonly forgetTurnStat = (): void => {
    this.turnStat = undefined;
  };
  /** The read of the file as it is now, shared by the calls that find it changed meanwhile. */
  private reading: { key: string; done: Promise<{ checked: CheckedScript; script: CompiledScript }> } | undefined;

  /**
   * @param script a script already checked (scripted-file.ts: createScriptedProvider checks one
   *   given in memory); else `config.script_checked`; else the file `config.script`, read on use.
   */
  constructor(
    readonly name: string,
    private readonly config: ProviderConfig,
    script?: CheckedScript,
  ) {
    this.defaultModel = config.model ?? 'scripted';
    const fail = (m: string): LlmError => this.fail(this.defaultModel ?? 'scripted', m);
    if (script !== undefined) this.inline = compile(script, IN_MEMORY, fail);
    else if (config.script_checked !== undefined)
      this.inline = compile(config.script_checked, config.script ?? IN_MEMORY, fail);
    else if (!config.script && config.script_error === undefined)
      throw fail('no script file configured: set script = "replies.toml" for this provider');
  }

  /**
   * The script file as it is now, checked (re-read only when it changed): what the server ships
   * to a worker or child process as `script_checked`. Undefined for a script given in memory.
   */
  async checkedScript(): Promise<CheckedScript | undefined> {
    if (this.inline !== undefined) return undefined;
    // Checked afresh: what is shipped is the file as it is now, even when a call of this turn read it.
    return (await this.current(this.defaultModel ?? 'scripted', true)).checked;
  }

  async chat(req: ChatRequest): Promise<ChatResponse> {
    const { response, latency, chunkMs } = await this.reply(req);
    // Unstreamed, the reply takes as long as its streamed pieces would.
    await this.wait(latency + (chunkMs > 0 ? chunkMs * Math.max(0, pieces(response.content).length - 1) : 0), req);
    return response;
  }

  async *stream(req: ChatRequest): AsyncGenerator<StreamEvent> {
    const { response, latency, chunkMs } = await this.reply(req);
    await this.wait(latency, req);
    let first = true;
    for (const text of pieces(response.content)) {
      if (!first) await this.wait(chunkMs, req);
      first = false;
      yield { type: 'text_delta', text };
    }
    for (const call of response.tool_calls) yield { type: 'tool_call', call };
    yield { type: 'done', response };
  }

  private async reply(req: ChatRequest): Promise<{ response: ChatResponse; latency: number; chunkMs: number }> {
    const model = req.model || this.defaultModel || 'scripted';
    if (req.signal?.aborted)
      throw new LlmError({ provider: this.name, model, kind: 'cancelled', message: 'the call was cancelled' });
    const script = this.inline ?? (await this.load(model));
    const request = latest(req.messages, 'user');
    const rule = script.rules.find((r) => r.match === undefined || r.match.test(request));
    const turnIndex = req.messages.filter((m) => m.role === 'assistant').length;
    let turn: Turn;
    if (rule === undefined) {
      if (script.fallback === undefined)
        throw this.fail(
          model,
          `no rule matches the request ${JSON.stringify(request.slice(0, 100))} and the script has no fallback`,
        );
      turn = { content: script.fallback };
    } else {
      turn = rule.turns[turnIndex] ??
        rule.turns.findLast((t) => !t.tool_calls?.length) ?? {
          content: script.fallback ?? `[scripted provider: ${rule.label} has no more turns]`,
        };
    }
    const vars = new TemplateVars(req.messages, request, rule?.match);
    const content = render(turn.content ?? '', vars);
    const calls: ToolCall[] = (turn.tool_calls ?? []).map((c, i) => ({
      id: c.id ?? `call_${turnIndex}_${i}`,
      name: c.name,
      arguments: renderValue(c.arguments, vars) as Record<string, unknown>,
    }));
    const inputChars = req.messages.reduce((n, m) => n + m.content.length, 0);
    const outputChars =
      content.length + calls.reduce((n, c) => n + c.name.length + JSON.stringify(c.arguments).length, 0);
    const response: ChatResponse = {
      provider: this.name,
      model,
      content,
      tool_calls: calls,
      usage: makeUsage(approxTokens(inputChars), approxTokens(outputChars)),
      finish_reason: calls.length > 0 ? 'tool_calls' : 'stop',
    };
    return {
      response,
      latency: rule?.latency_ms ?? script.latency_ms ?? this.config.latency_ms ?? 0,
      chunkMs: script.chunk_ms ?? 0,
    };
  }

  private async wait(ms: number, req: ChatRequest): Promise<void> {
    if (ms <= 0) return;
    try {
      await sleep(ms, req.signal);
    } catch (e) {
      throw new LlmError(
        {
          provider: this.name,
          model: req.model || this.defaultModel || 'scripted',
          kind: 'cancelled',
          message: 'the call was cancelled',
        },
        { cause: e },
      );
    }
  }

  private async load(model: string): Promise<CompiledScript> {
    return (await this.current(model)).script;
  }

  /** The parsed script file, re-read when its inode, mtime or size changed (`fresh`: stat it even if this turn did). */
  private async current(model: string, fresh = false): Promise<{ checked: CheckedScript; script: CompiledScript }> {
    if (this.config.script_error !== undefined) throw this.fail(model, this.config.script_error);
    const file = this.config.script ?? '';
    let info = fresh ? undefined : this.turnStat;
    if (info === undefined) {
      try {
        // Synchronous on purpose: this runs on model calls, and a stat of a local file takes
        // ~2 µs inline against ~30 µs of CPU through the thread pool (fs/promises). Once per
        // event-loop turn: a burst of runs reaching the model in one turn stats the file once, and a
        // change is seen by the calls of the turns after it.
        info = statSync(file);
      } catch (e) {
        throw this.fail(
          model,
          `cannot read script file "${file}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
          e,
        );
      }
      if (this.turnStat === undefined) setImmediate(this.forgetTurnStat);
      this.turnStat = info;
    }
    // The inode too: a file replaced by a rename within the file system's timestamp resolution may
    // have the old one's size and modification time.
    const c = this.cache;
    if (c && c.ino === info.ino && c.mtimeMs === info.mtimeMs && c.size === info.size) return c;
    // Calls that arrive while the file is being read wait for that read: a burst of calls on a
    // cold cache read the file once, not once each.
    const key = `${info.ino}:${info.mtimeMs}:${info.size}`;
    if (this.reading?.key === key) return this.reading.done;
    const fail = (m: string, cause?: unknown): LlmError => this.fail(model, `script file "${file}": ${m}`, cause);
    const done = (async () => {
      const { readScriptFile } = await import('./scripted-file.js');
      const checked = await readScriptFile(file, fail);
      this.cache = {
        ino: info.ino,
        mtimeMs: info.mtimeMs,
        size: info.size,
        checked,
        script: compile(checked, file, fail),
      };
      return this.cache;
    })();
    this.reading = { key, done };
    const clear = () => {
      if (this.reading?.done === done) this.reading = undefined;
    };
    done.then(clear, clear);
    return done;
  }

  private fail(model: string, message: string, cause?: unknown): LlmError {
    return new LlmError({ provider: this.name, model, kind: 'script', message }, { cause });
  }
}

/** Builds the rules' regular expressions and checks the placeholders of a checked script. */
function compile(s: CheckedScript, file: string, fail: (m: string) => LlmError): CompiledScript {
  const where = file === IN_MEMORY ? `${IN_MEMORY}: ` : '';
  const rules = s.rules.map((r, i): CompiledRule => {
    const path = `rules[${i}]`;
    const label = r.name !== undefined ? `rule "${r.name}"` : `rule ${i + 1}`;
    let match: RegExp | undefined;
    if (r.match !== undefined) {
      try {
        match = new RegExp(r.match, 'i');
      } catch (e) {
        throw fail(`${where}${path}.match: invalid regular expression: ${(e as Error).message}`);
      }
    }
    const turns: Turn[] = r.turns ?? [{ content: r.content, tool_calls: r.tool_calls }];
    turns.forEach((t, j) => {
      const at = r.turns ? `${path}.turns[${j}]` : path;
      checkPlaceholders(t.content, `${at}.content`, where, fail);
      t.tool_calls?.forEach((c, k) => checkPlaceholders(c.arguments, `${at}.tool_calls[${k}].arguments`, where, fail));
    });
    return { label, match, latency_ms: r.latency_ms, turns };
  });
  if (s.fallback !== undefined) checkPlaceholders(s.fallback, 'fallback', where, fail);
  return { latency_ms: s.latency_ms, chunk_ms: s.chunk_ms, fallback: s.fallback, rules };
}

function checkPlaceholders(value: unknown, path: string, where: string, fail: (m: string) => LlmError): void {
  if (typeof value === 'string') {
    for (const m of value.matchAll(PLACEHOLDER)) {
      const key = m[1] ?? '';
      const ok =
        key === 'request' ||
        key === 'system' ||
        key === 'last_tool_result' ||
        key === 'tool_results' ||
        (key.startsWith('tool_result.') && key.length > 'tool_result.'.length) ||
        /^match\.\d$/.test(key);
      if (!ok)
        throw fail(
          `${where}${path}: unknown placeholder {{${key}}} (known: {{request}}, {{system}}, {{last_tool_result}}, {{tool_results}}, {{tool_result.NAME}}, {{match.N}})`,
        );
    }
  } else if (Array.isArray(value)) value.forEach((v) => checkPlaceholders(v, path, where, fail));
  else if (value !== null && typeof value === 'object')
    for (const v of Object.values(value)) checkPlaceholders(v, path, where, fail);
}

/**
 * What a reply's placeholders draw on, each part computed on first use: most replies name only
 * `{{request}}`, and the system text and tool results of every call would otherwise be built for nothing.
 */
class TemplateVars {
  #system: string | undefined;
  #results: { name: string; content: string }[] | undefined;
  #groups: readonly (string | undefined)[] | undefined;

  constructor(
    private readonly messages: ChatMessage[],
    readonly request: string,
    private readonly match: RegExp | undefined,
  ) {}

  /** Every system message of the request, in order, separated by a line `---` (tests check where prompts end up). */
  get system(): string {
    return (this.#system ??= this.messages.flatMap((m) => (m.role === 'system' ? [m.content] : [])).join('\n---\n'));
  }

  get results(): { name: string; content: string }[] {
    return (this.#results ??= this.messages.flatMap((m) =>
      m.role === 'tool' ? [{ name: m.name, content: m.content }] : [],
    ));
  }

  /** The capture groups of the rule's `match` in the request (`{{match.N}}`). */
  get groups(): readonly (string | undefined)[] {
    return (this.#groups ??= this.match?.exec(this.request) ?? []);
  }
}

function render(template: string, v: TemplateVars): string {
  // Most replies hold no placeholder at all, or only {{request}}.
  if (!template.includes('{{')) return template;
  return template.replace(PLACEHOLDER, (whole, key: string) => {
    if (key === 'request') return v.request;
    if (key === 'system') return v.system;
    if (key === 'last_tool_result') return v.results.at(-1)?.content ?? '';
    if (key === 'tool_results') return v.results.map((r) => r.content).join('\n');
    if (key.startsWith('match.')) return v.groups[Number(key.slice('match.'.length))] ?? '';
    if (key.startsWith('tool_result.')) {
      const name = key.slice('tool_result.'.length);
      return v.results.findLast((r) => r.name === name)?.content ?? '';
    }
    return whole;
  });
}

function renderValue(value: unknown, v: TemplateVars): unknown {
  if (typeof value === 'string') return render(value, v);
  if (Array.isArray(value)) return value.map((x) => renderValue(x, v));
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(Object.entries(value).map(([k, x]) => [k, renderValue(x, v)]));
  }
  return value;
}

/** The streamed pieces of a reply's text: a word with the white space before the next. */
function pieces(content: string): string[] {
  return content.split(/(?<=\s)(?=\S)/).filter((t) => t !== '');
}

function latest(messages: ChatMessage[], role: 'user'): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m?.role === role) return m.content;
  }
  return '';
}

function approxTokens(chars: number): number {
  return Math.max(1, Math.ceil(chars / 4));
}
