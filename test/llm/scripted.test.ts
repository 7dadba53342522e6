import { mkdtemp, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createProvider,
  LlmError,
  type ChatMessage,
  type LlmProvider,
  type Script,
  type StreamEvent,
} from '../../src/llm/index.js';
import { createScriptedProvider } from '../../src/llm/scripted-file.js';
import { providerConfig } from './helpers/server.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'caxton-scripted-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fileProvider(name: string, content: string): Promise<LlmProvider> {
  const path = join(dir, name);
  await writeFile(path, content);
  return createProvider('demo', providerConfig({ type: 'scripted', script: path }));
}

async function scriptError(
  p: LlmProvider,
  messages: ChatMessage[] = [{ role: 'user', content: 'hi' }],
): Promise<LlmError> {
  const e = await p.chat({ model: '', messages }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LlmError);
  expect((e as LlmError).kind).toBe('script');
  return e as LlmError;
}

const WEATHER = `
# Demo script
fallback = "No script for that."

[[rules]]
name = "weather"
match = "weather|forecast"

[[rules.turns]]
tool_calls = [{ name = "http_client", arguments = { url = "https://wttr.in/?q={{request}}" } }]

[[rules.turns]]
tool_calls = [
  { name = "memory_search", arguments = { query = "weather" } },
  { name = "http_client", arguments = { url = "https://backup" } },
]

[[rules.turns]]
content = "Forecast: {{tool_result.http_client}} | last: {{last_tool_result}} | all: {{tool_results}}"

[[rules]]
match = "^loop"
tool_calls = [{ name = "noop" }]

[[rules]]
match = "hello"
content = "You said: {{request}}"
`;

describe('scripted provider', () => {
  it('picks the first matching rule and the turn by the number of assistant messages', async () => {
    const p = await fileProvider('weather.toml', WEATHER);
    const messages: ChatMessage[] = [
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'Weather in Paris?' },
    ];
    const t0 = await p.chat({ model: '', messages });
    expect(t0).toMatchObject({
      provider: 'demo',
      model: 'scripted',
      content: '',
      finish_reason: 'tool_calls',
      tool_calls: [{ id: 'call_0_0', name: 'http_client', arguments: { url: 'https://wttr.in/?q=Weather in Paris?' } }],
    });
    messages.push(
      { role: 'assistant', content: '', tool_calls: t0.tool_calls },
      { role: 'tool', tool_call_id: 'call_0_0', name: 'http_client', content: 'rain' },
    );

    const t1 = await p.chat({ model: 'my-model', messages });
    expect(t1.model).toBe('my-model');
    expect(t1.tool_calls.map((c) => [c.id, c.name])).toEqual([
      ['call_1_0', 'memory_search'],
      ['call_1_1', 'http_client'],
    ]);
    messages.push(
      { role: 'assistant', content: '', tool_calls: t1.tool_calls },
      { role: 'tool', tool_call_id: 'call_1_0', name: 'memory_search', content: 'nothing stored' },
      { role: 'tool', tool_call_id: 'call_1_1', name: 'http_client', content: 'sun' },
    );

    const t2 = await p.chat({ model: '', messages });
    expect(t2.content).toBe('Forecast: sun | last: sun | all: rain\nnothing stored\nsun');
    expect(t2.finish_reason).toBe('stop');
    expect(t2.tool_calls).toEqual([]);

    // Past the last turn: the last turn without tool calls repeats.
    messages.push({ role: 'assistant', content: t2.content }, { role: 'user', content: 'and tomorrow’s weather?' });
    expect((await p.chat({ model: '', messages })).content).toBe(t2.content);
  });

  it("{{match.N}} is a capture group of the rule's match in the request, in content and tool arguments", async () => {
    const p = createScriptedProvider('demo', providerConfig({ type: 'scripted' }), {
      rules: [
        {
          match: '^review\\s+(\\S+)(?:\\s+(\\S+))?',
          turns: [
            { tool_calls: [{ name: 'workspace.read', arguments: { file_path: '{{match.1}}' } }] },
            { content: 'read {{match.1}}[{{match.2}}]: {{last_tool_result}}' },
          ],
        },
      ],
    });
    const messages: ChatMessage[] = [{ role: 'user', content: 'review src/app.ts please' }];
    const t0 = await p.chat({ model: '', messages });
    expect(t0.tool_calls[0]).toMatchObject({ name: 'workspace.read', arguments: { file_path: 'src/app.ts' } });
    messages.push(
      { role: 'assistant', content: '', tool_calls: t0.tool_calls },
      { role: 'tool', tool_call_id: t0.tool_calls[0]!.id, name: 'workspace.read', content: '1\tx' },
    );
    expect((await p.chat({ model: '', messages })).content).toBe('read src/app.ts[please]: 1\tx');
    expect(() =>
      createScriptedProvider('demo', providerConfig({ type: 'scripted' }), { rules: [{ content: '{{match.x}}' }] }),
    ).toThrow(/unknown placeholder \{\{match\.x\}\}/);
  });

  it('uses the catch-all order, the fallback when nothing matches, and the fallback after tool-only turns', async () => {
    const p = await fileProvider('weather2.toml', WEATHER);
    expect((await p.chat({ model: '', messages: [{ role: 'user', content: 'hello there' }] })).content).toBe(
      'You said: hello there',
    );
    expect((await p.chat({ model: '', messages: [{ role: 'user', content: 'what?' }] })).content).toBe(
      'No script for that.',
    );
    const looped = await p.chat({
      model: '',
      messages: [
        { role: 'user', content: 'loop forever' },
        { role: 'assistant', content: '', tool_calls: [{ id: 'a', name: 'noop', arguments: {} }] },
        { role: 'tool', tool_call_id: 'a', name: 'noop', content: '' },
      ],
    });
    expect(looped).toMatchObject({ content: 'No script for that.', tool_calls: [], finish_reason: 'stop' });
  });

  it('fails clearly when no rule matches and there is no fallback', async () => {
    const p = await fileProvider('nofallback.toml', '[[rules]]\nmatch = "x"\ncontent = "y"\n');
    const e = await scriptError(p, [{ role: 'user', content: 'abc' }]);
    expect(e.message).toContain('no rule matches');
  });

  it('reads JSON scripts and approximates usage as chars / 4', async () => {
    const p = await fileProvider('s.json', JSON.stringify({ rules: [{ turns: [{ content: 'twelve chars' }] }] }));
    const r = await p.chat({ model: '', messages: [{ role: 'user', content: 'x'.repeat(40) }] });
    expect(r.usage).toEqual({ input_tokens: 10, output_tokens: 3, total_tokens: 13 });
    const tiny = await createScriptedProvider('t', providerConfig({ type: 'scripted' }), {
      rules: [{ content: '' }],
    }).chat({ model: '', messages: [] });
    expect(tiny.usage).toEqual({ input_tokens: 1, output_tokens: 1, total_tokens: 2 });
  });

  it('streams the content as word chunks, then tool calls, then done', async () => {
    const p = createScriptedProvider('mem', providerConfig({ type: 'scripted' }), {
      rules: [
        {
          turns: [
            { content: 'Hello  big\nworld ', tool_calls: [{ name: 'save', arguments: { text: '{{request}}' } }] },
          ],
        },
      ],
    });
    const events: StreamEvent[] = [];
    for await (const ev of p.stream({ model: 'm', messages: [{ role: 'user', content: 'note this' }] }))
      events.push(ev);
    expect(events.slice(0, -1)).toEqual([
      { type: 'text_delta', text: 'Hello  ' },
      { type: 'text_delta', text: 'big\n' },
      { type: 'text_delta', text: 'world ' },
      { type: 'tool_call', call: { id: 'call_0_0', name: 'save', arguments: { text: 'note this' } } },
    ]);
    expect(events.at(-1)).toMatchObject({
      type: 'done',
      response: { content: 'Hello  big\nworld ', finish_reason: 'tool_calls', provider: 'mem', model: 'm' },
    });
  });

  it('honours latency_ms and cancels during it', async () => {
    const p = createScriptedProvider('slow', providerConfig({ type: 'scripted' }), {
      latency_ms: 5_000,
      rules: [{ content: 'late' }],
    });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const started = Date.now();
    await expect(p.chat({ model: '', messages: [], signal: ac.signal })).rejects.toMatchObject({ kind: 'cancelled' });
    expect(Date.now() - started).toBeLessThan(2_000);

    const quick = createScriptedProvider('quick', providerConfig({ type: 'scripted', latency_ms: 5_000 }), {
      rules: [{ content: 'fast', latency_ms: 30 }],
    });
    const t = Date.now();
    expect((await quick.chat({ model: '', messages: [] })).content).toBe('fast');
    expect(Date.now() - t).toBeGreaterThanOrEqual(20);
    expect(Date.now() - t).toBeLessThan(2_000);
  });

  it('paces streamed pieces by chunk_ms, and a cancellation between two pieces ends the call', async () => {
    const p = createScriptedProvider('paced', providerConfig({ type: 'scripted' }), {
      chunk_ms: 60_000,
      rules: [{ content: 'first second' }],
    });
    const ac = new AbortController();
    const seen: string[] = [];
    const run = (async () => {
      for await (const e of p.stream({ model: '', messages: [], signal: ac.signal })) {
        if (e.type === 'text_delta') {
          seen.push(e.text);
          ac.abort();
        }
      }
    })();
    await expect(run).rejects.toMatchObject({ kind: 'cancelled' });
    expect(seen).toEqual(['first ']);
  });

  it('re-reads the file when it changes', async () => {
    const path = join(dir, 'reload.toml');
    await writeFile(path, '[[rules]]\ncontent = "one"\n');
    const p = createProvider('r', providerConfig({ type: 'scripted', script: path }));
    expect((await p.chat({ model: '', messages: [] })).content).toBe('one');
    await writeFile(path, '[[rules]]\ncontent = "two"\n');
    const later = new Date(Date.now() + 5_000);
    await utimes(path, later, later);
    expect((await p.chat({ model: '', messages: [] })).content).toBe('two');
  });

  it('re-reads a file replaced by a rename at the next call, even with the old size', async () => {
    const path = join(dir, 'swap.toml');
    await writeFile(path, '[[rules]]\ncontent = "one"\n');
    const p = createProvider('s', providerConfig({ type: 'scripted', script: path }));
    expect((await p.chat({ model: '', messages: [] })).content).toBe('one');
    expect((await p.chat({ model: '', messages: [] })).content).toBe('one');
    for (const next of ['two', 'six', 'three, longer']) {
      await writeFile(`${path}.new`, `[[rules]]\ncontent = "${next}"\n`);
      await rename(`${path}.new`, path);
      expect((await p.chat({ model: '', messages: [] })).content).toBe(next);
    }
  });
});

describe('scripted provider: bad scripts', () => {
  it('reports TOML syntax errors with the file, line and column', async () => {
    const p = await fileProvider('broken.toml', '[[rules]]\ncontent = "ok"\nmatch = = "x"\n');
    const e = await scriptError(p);
    expect(e.message).toContain('broken.toml');
    expect(e.message).toMatch(/line 3, column \d+/);
  });

  it('reports JSON syntax errors with a line', async () => {
    const p = await fileProvider('broken.json', '{\n  "rules": [\n    { "content": "a", }\n  ]\n}\n');
    const e = await scriptError(p);
    expect(e.message).toContain('broken.json');
    expect(e.message).toMatch(/line 3/);
  });

  it('reports shape errors with the field path', async () => {
    const p = await fileProvider('shape.toml', '[[rules]]\n[[rules.turns]]\ncontent = 42\n');
    const e = await scriptError(p);
    expect(e.message).toContain('rules[0].turns[0].content');
  });

  it('rejects unknown keys, unknown placeholders and bad regexes', async () => {
    expect(
      (await scriptError(await fileProvider('k.toml', '[[rules]]\ncontent = "a"\ncontnet = "b"\n'))).message,
    ).toContain('contnet');
    expect(
      (await scriptError(await fileProvider('ph.toml', '[[rules]]\ncontent = "{{requets}}"\n'))).message,
    ).toContain('{{requets}}');
    expect(
      (await scriptError(await fileProvider('re.toml', '[[rules]]\nmatch = "(unclosed"\ncontent = "a"\n'))).message,
    ).toContain('rules[0].match');
  });

  it('rejects a missing file and an unsupported extension', async () => {
    const missing = createProvider('m', providerConfig({ type: 'scripted', script: join(dir, 'nope.toml') }));
    expect((await scriptError(missing)).message).toContain('ENOENT');
    expect((await scriptError(await fileProvider('s.yaml', 'rules: []'))).message).toContain('.toml or .json');
  });

  it('rejects an invalid in-memory script at creation', () => {
    expect(() =>
      createScriptedProvider('x', providerConfig({ type: 'scripted' }), { rules: [{ turns: [] }] } as Script),
    ).toThrow(/in-memory script.*rules\[0\]\.turns/);
    expect(() => createProvider('x', providerConfig({ type: 'scripted' }))).toThrow(/no script file/);
  });
});
