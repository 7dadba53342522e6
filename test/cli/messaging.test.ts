/**
 * The messaging commands (`caxton message`, `conversation`, `dlq`) as real child processes against
 * a real `caxton serve` whose agents use the scripted LLM provider.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanup,
  expectExit,
  expectNoStackTrace,
  parseJson,
  startScriptedServe,
  tomlAgent,
  type ScriptedServe,
} from './helpers/cli.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

/** A provider whose script file does not exist until the test writes it: calls fail (retryable) until then. */
const CONFIG = `
[llm.providers.later]
type = "scripted"
script = "later.toml"

[messaging]
max_attempts = 1
`;

// Each test runs several CLI processes (about 0.5 s each alone); beside the whole suite a test
// running thirteen of them has taken 30 s.
describe('caxton message, conversation and dlq', { timeout: 120_000 }, () => {
  let dir: string;
  let cli: ScriptedServe['cli'];

  beforeAll(async () => {
    ({ dir, cli } = await startScriptedServe({
      prefix: 'caxton-msg-cli-',
      config: CONFIG,
      agents: {
        'helper.toml': tomlAgent('helper', { capabilities: ['answering'] }),
        'fragile.toml': tomlAgent('fragile', { capabilities: ['fragile'], extra: '\n[llm]\nprovider = "later"\n' }),
      },
    }));
  });
  afterAll(cleanup);

  let conversationId: string;

  it('message send --wait --json prints the outcome: the conversation and its messages (exit 0)', async () => {
    const r = await cli(
      'message',
      'send',
      '--capability',
      'answering',
      '--performative',
      'request',
      '--content',
      'what is 6 times 7?',
      '--wait',
      '30',
      '--json',
    );
    expectExit(r, 0);
    const out = parseJson<Json>(r);
    expect(out).toMatchObject({
      performative: 'request',
      routed_to: ['helper'],
      routing: 'one',
      duplicate: false,
      conversation: { state: 'completed', protocol: 'fipa-request' },
    });
    expect(out.messages.map((m: Json) => `${m.performative}:${m.sender}`)).toEqual([
      'request:key:admin',
      'agree:helper',
      'inform:helper',
    ]);
    expect(out.messages[2].content).toBe('42');
    conversationId = out.conversation_id;
  });

  it('message send prints where the message went and, with --wait, the replies', async () => {
    const plain = await cli(
      'message',
      'send',
      '--capability',
      'answering',
      '--performative',
      'query-ref',
      '--content',
      'the answer?',
    );
    expectExit(plain, 0);
    expect(plain.stdout).toMatch(
      /^sent query-ref msg_\w+\nconversation conv_\w+\nrouted to helper \(one provider of the capability\)\n$/,
    );

    const waited = await cli(
      'message',
      'send',
      '--to',
      'helper',
      '--performative',
      'query-ref',
      '--content-json',
      '{"question": "the answer?"}',
      '--param',
      'X-priority=high',
      '--wait',
    );
    expectExit(waited, 0);
    expect(waited.stdout).toContain('routed to helper');
    expect(waited.stdout).toMatch(/\[inform\] helper → key:admin: 42/);
    expect(waited.stdout).toMatch(/conversation conv_\w+ is completed/);
  });

  it('conversation list and show (--json and text)', async () => {
    const list = await cli('conversation', 'list', '--json');
    expectExit(list, 0);
    const l = parseJson<Json>(list);
    expect(l.total).toBeGreaterThanOrEqual(3);
    expect(l.conversations.map((c: Json) => c.id)).toContain(conversationId);

    const filtered = await cli(
      'conversation',
      'list',
      '--state',
      'completed',
      '--participant',
      'helper',
      '--limit',
      '2',
    );
    expectExit(filtered, 0);
    expect(filtered.stdout).toMatch(/^ID\s+STATE\s+PROTOCOL/);
    expect(filtered.stdout).toContain('completed');

    const show = await cli('conversation', 'show', conversationId, '--json');
    expectExit(show, 0);
    const s = parseJson<Json>(show);
    expect(s.conversation).toMatchObject({ id: conversationId, state: 'completed' });
    expect(s.messages.map((m: Json) => m.performative)).toEqual(['request', 'agree', 'inform']);

    const text = await cli('conversation', 'show', conversationId);
    expectExit(text, 0);
    expect(text.stdout).toContain(`conversation: ${conversationId}`);
    expect(text.stdout).toMatch(/state:\s+completed/);
    expect(text.stdout).toMatch(/\[request\] key:admin → capability "answering" \(helper\): what is 6 times 7\?/);
    expect(text.stdout).toMatch(/\[inform\] helper → key:admin: 42/);

    const msgs = await cli('message', 'list', '--conversation', conversationId, '--json');
    expectExit(msgs, 0);
    expect(parseJson<Json>(msgs).messages.map((m: Json) => m.performative)).toEqual(['inform', 'agree', 'request']);
    const informs = await cli('message', 'list', '--conversation', conversationId, '--performative', 'inform');
    expectExit(informs, 0);
    expect(informs.stdout).toMatch(/\[inform\] helper → key:admin: 42\n\(1 of 1, newest first\)\n$/);
    expect((await cli('message', 'list', '--sender', 'nobody')).stdout.trim()).toBe('no messages match');
    expectExit(await cli('message', 'list', '--limit', '0'), 2);
  });

  it('conversation show --follow streams until the conversation ends', async () => {
    const json = await cli('conversation', 'show', conversationId, '--follow', '--json');
    expectExit(json, 0);
    const events = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; data: Json });
    expect(events.map((e) => e.event)).toEqual(['message', 'message', 'message', 'state', 'end']);
    expect(events.at(-1)!.data).toMatchObject({ conversation_id: conversationId, state: 'completed' });

    const text = await cli('conversation', 'show', conversationId, '--follow');
    expectExit(text, 0);
    expect(text.stdout).toMatch(/\[agree\] helper → key:admin\n/);
    expect(text.stdout.trim().split('\n').at(-1)).toBe(`conversation ${conversationId} is completed`);
  });

  it('dlq list, show and replay: a dead letter is delivered once its agent works', async () => {
    const empty = await cli('dlq', 'list');
    expectExit(empty, 0);
    expect(empty.stdout.trim()).toBe('the dead-letter queue is empty');

    const failed = await cli(
      'message',
      'send',
      '--capability',
      'fragile',
      '--content',
      'do it',
      '--wait',
      '30',
      '--json',
    );
    expectExit(failed, 1); // the conversation failed
    const f = parseJson<Json>(failed);
    expect(f.conversation.state).toBe('failed');

    const list = await cli('dlq', 'list', '--json');
    expectExit(list, 0);
    const l = parseJson<Json>(list);
    expect(l.total).toBe(1);
    const dead = l.dead_letters[0];
    expect(dead).toMatchObject({
      receiver: 'fragile',
      state: 'dead',
      attempts: 1,
      message_id: f.id,
      message: { content: 'do it' },
    });
    expect(dead.last_error).toContain('later.toml');

    expect(
      parseJson<Json>(await cli('dlq', 'list', '--receiver', 'FRAG', '--error', 'later.toml', '--json')).total,
    ).toBe(1);
    expect(parseJson<Json>(await cli('dlq', 'list', '--receiver', 'nobody', '--json')).total).toBe(0);
    const table = await cli('dlq', 'list');
    expectExit(table, 0);
    expect(table.stdout).toMatch(/^ID\s+RECEIVER\s+ACT\s+ATTEMPTS/);
    expect(table.stdout).toContain('fragile');

    const show = await cli('dlq', 'show', String(dead.id));
    expectExit(show, 0);
    expect(show.stdout).toContain(`dead letter:  ${dead.id}`);
    expect(show.stdout).toContain(`replay it with: caxton dlq replay ${dead.id}`);
    expect(show.stdout).toMatch(/each attempt:\n {2}1\. \d{4}-\d\d-\d\dT.*later\.toml/);

    // Discard and purge count first: nothing goes without --yes, and a filter is required.
    const count = await cli('dlq', 'discard', '--receiver', 'fragile');
    expectExit(count, 0);
    expect(count.stdout.trim()).toBe('1 dead letter match; run again with --yes to discard it');
    expect(parseJson<Json>(await cli('dlq', 'purge', '--receiver', 'nobody', '--yes', '--json'))).toEqual({
      dry_run: false,
      matched: 0,
      discarded: [],
      conversations: 0,
    });
    const unfiltered = await cli('dlq', 'discard');
    expectExit(unfiltered, 2);
    expect(unfiltered.stderr).toContain('choose which dead letters');

    writeFileSync(join(dir, 'later.toml'), 'fallback = "done at last"\n');
    const replay = await cli('dlq', 'replay', String(dead.id), '--json');
    expectExit(replay, 0);
    expect(parseJson<Json>(replay)).toEqual({
      id: dead.id,
      message_id: f.id,
      receiver: 'fragile',
      conversation_id: f.conversation_id,
    });

    const follow = await cli('conversation', 'show', f.conversation_id, '--follow');
    expectExit(follow, 0);
    expect(follow.stdout).toMatch(/\[inform\] fragile → key:admin: done at last/);
    expect(follow.stdout).toContain(`conversation ${f.conversation_id} is completed`);

    const after = await cli('dlq', 'list', '--json');
    expect(parseJson<Json>(after).total).toBe(0);
    const again = await cli('dlq', 'replay', String(dead.id));
    expectExit(again, 1);
    expect(again.stderr).toContain(`no dead letter with id ${dead.id}`);
  });

  it('message send --file sends a JSON Lines file in batches; a refused line is named and the others are sent (exit 1)', async () => {
    const lines = [
      JSON.stringify({ id: 'file-msg-1', performative: 'inform', receiver: 'helper', content: 'one' }),
      '',
      JSON.stringify({ id: 'file-msg-2', performative: 'shout', receiver: 'helper', content: 'bad act' }),
      JSON.stringify({ id: 'file-msg-3', performative: 'inform', receiver: 'helper', content: 'three' }),
      JSON.stringify({ id: 'file-msg-4', performative: 'inform', receiver: 'helper', content: 'four' }),
    ];
    writeFileSync(join(dir, 'msgs.jsonl'), lines.join('\n') + '\n');
    const r = await cli('message', 'send', '--file', 'msgs.jsonl', '--batch-size', '2', '--json');
    expectExit(r, 1);
    const out = parseJson<Json>(r);
    expect(out).toMatchObject({ accepted: 3, duplicates: 0, refused: 1 });
    expect(out.results.map((x: Json) => [x.index, x.line, x.status])).toEqual([
      [0, 1, 202],
      [1, 3, 400],
      [2, 4, 202],
      [3, 5, 202],
    ]);
    expect(out.results[1].error.message).toContain('performative');

    const again = await cli('message', 'send', '--file', 'msgs.jsonl');
    expectExit(again, 1);
    expect(again.stderr).toMatch(/^line 3: invalid_message: .*performative/m);
    expect(again.stdout).toBe('sent 0 messages from msgs.jsonl, 3 already accepted (same ids), 1 refused\n');

    writeFileSync(join(dir, 'broken.jsonl'), '{"performative": "inform"\n');
    const broken = await cli('message', 'send', '--file', 'broken.jsonl');
    expectExit(broken, 2);
    expect(broken.stderr).toContain('broken.jsonl line 1 is not a JSON message');
    expectExit(await cli('message', 'send', '--file', 'msgs.jsonl', '--to', 'helper'), 2);
  });

  it('usage errors exit 2 with a message and no stack trace', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['message', 'send', '--capability', 'answering', '--to', 'helper', '--content', 'x'],
        /either --capability or --to, not both/,
      ],
      [['message', 'send', '--content', 'x'], /--capability NAME .* or --to AGENT/],
      [['message', 'send', '--capability', 'answering'], /needs content/],
      [
        ['message', 'send', '--capability', 'answering', '--content', 'x', '--content-json', '1'],
        /either --content or --content-json/,
      ],
      [['message', 'send', '--capability', 'answering', '--content-json', '{oops'], /--content-json is not valid JSON/],
      [
        ['message', 'send', '--capability', 'answering', '--content', 'x', '--param', 'priority'],
        /--param expects X-NAME=VALUE/,
      ],
      [
        ['message', 'send', '--capability', 'answering', '--content', 'x', '--wait', 'forever'],
        /--wait expects seconds/,
      ],
      [
        ['message', 'send', '--capability', 'answering', '--content', 'x', '--wait', '301'],
        /--wait expects seconds between 0 and 300/,
      ],
      [['message', 'send', '--capability', 'answering', '--content', 'x', '--bogus'], /unknown option '--bogus'/],
      [['conversation', 'list', '--limit', '0'], /--limit expects a whole number/],
      [['conversation', 'show'], /missing required argument 'id'/],
      [['dlq', 'show', 'abc'], /a dead-letter id is a positive whole number/],
      [['dlq', 'replay', '-1'], /(unknown option|positive whole number)/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(...args);
      expectExit(r, 2);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(r.stdout).toBe('');
      expectNoStackTrace(r);
    }
  });

  it('API errors exit 1 with the server message (and the error envelope with --json)', async () => {
    const r = await cli('message', 'send', '--capability', 'answering', '--performative', 'reqest', '--content', 'x');
    expectExit(r, 1);
    expect(r.stderr).toContain(
      'error: invalid message: performative: unknown performative "reqest"; did you mean "request"?',
    );
    expectNoStackTrace(r);

    const j = await cli(
      'message',
      'send',
      '--capability',
      'answering',
      '--content',
      'x',
      '--reply-by',
      'tomorrow',
      '--json',
    );
    expectExit(j, 1);
    expect(parseJson<Json>(j).error).toMatchObject({
      code: 'invalid_message',
      details: { issues: [{ field: 'reply_by' }] },
    });

    const state = await cli('conversation', 'list', '--state', 'complete');
    expectExit(state, 1);
    expect(state.stderr).toContain('did you mean "completed"?');

    const missing = await cli('conversation', 'show', 'conv_nope');
    expectExit(missing, 1);
    expect(missing.stderr).toContain('no conversation with id "conv_nope"');
  });

  it('an unroutable message is reported and exits 1', async () => {
    const r = await cli('message', 'send', '--capability', 'time-travel', '--content', 'yesterday');
    expectExit(r, 1);
    expect(r.stdout).toMatch(/^sent request msg_\w+/);
    expect(r.stderr).toContain('not delivered: no agent provides capability "time-travel"');
  });
});
