/**
 * `caxton conversation show` shows the bids of a Contract Net as values: each bid's rank, its
 * values and how each was read (typed, or read from text and from which words), the rule, the
 * winner and why; `--json` carries the same `bids` the conversation API answers. A real
 * `caxton serve` child; the bidders' models are scripted providers, one answering through the
 * offered `propose` act, two in prose (the scripted provider does not follow tool_choice).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, expectExit, parseJson, startScriptedServe, tomlAgent, type ScriptedServe } from './helpers/cli.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const provider = (name: string) => `
[llm.providers.${name}]
type = "scripted"
script = "${name}.toml"
`;

/** A bidder's script: its answer to a call for proposals, and its report once awarded. */
const script = (cfp: string) => `
[[rules]]
match = "This is a call for proposals"
${cfp}

[[rules]]
content = "delivered"
`;

describe('caxton conversation show: the bids', () => {
  let dir: string;
  let cli: ScriptedServe['cli'];

  beforeAll(async () => {
    const agent = (name: string) =>
      tomlAgent(name, { capabilities: ['shipping'], extra: `\n[llm]\nprovider = "${name.replace('-', '_')}"\n` });
    ({ dir, cli } = await startScriptedServe({
      prefix: 'caxton-bids-cli-',
      config: provider('bidder_a') + provider('bidder_b') + provider('bidder_c'),
      agents: {
        'bidder-a.toml': agent('bidder-a'),
        'bidder-b.toml': agent('bidder-b'),
        'bidder-c.toml': agent('bidder-c'),
      },
    }));
    writeFileSync(
      join(dir, 'bidder_a.toml'),
      script(
        'tool_calls = [{ name = "propose", arguments = { price = 12, currency = "EUR", terms = "For 3 boxes, 5 days" } }]',
      ),
    );
    writeFileSync(join(dir, 'bidder_b.toml'), script('content = "Sure, 9 EUR, delivered in 2 days"'));
    writeFileSync(join(dir, 'bidder_c.toml'), script('content = "For 3 boxes I can do it for 11 EUR"'));
  });
  afterAll(cleanup);

  it('prints each bid with its values and how they were read, the rule, the winner and why; --json carries them', async () => {
    const sent = await cli(
      'message',
      'send',
      '--performative',
      'cfp',
      '--capability',
      'shipping',
      '--content',
      'Ship 3 boxes to Lyon',
      '--reply-by',
      '20s',
      '--wait',
      '30',
      '--json',
    );
    expectExit(sent, 0);
    const id = parseJson<Json>(sent).conversation_id as string;
    expect(parseJson<Json>(sent).conversation.state).toBe('completed');

    const json = await cli('conversation', 'show', id, '--json');
    expectExit(json, 0);
    const bids = parseJson<Json>(json).bids;
    expect(bids.rule).toBe('lowest price');
    expect(bids.winner.sender).toBe('bidder-b');
    expect(bids.rounds[0].bids.map((b: Json) => [b.rank, b.sender, b.values.price, b.source, b.outcome])).toEqual([
      [1, 'bidder-b', { value: 9, source: 'text', read_from: '9 EUR' }, 'text', 'accepted'],
      [2, 'bidder-c', { value: 11, source: 'text', read_from: '11 EUR' }, 'text', 'rejected'],
      [3, 'bidder-a', { value: 12, source: 'typed' }, 'typed', 'rejected'],
    ]);
    expect(bids.rounds[0].bids[2].fields).toEqual({ price: 12, currency: 'EUR', terms: 'For 3 boxes, 5 days' });
    expect(bids.why).toBe('bidder-b won: lowest price: 9 against 11 (bidder-c), 12 (bidder-a)');

    const text = await cli('conversation', 'show', id);
    expectExit(text, 0);
    expect(text.stdout).toContain('bids (rule: lowest price):');
    expect(text.stdout).toMatch(
      /#1\s+bidder-b\s+price 9 \(read from "9 EUR"\)\s+text: Sure, 9 EUR, delivered in 2 days\s+accepted/,
    );
    expect(text.stdout).toMatch(
      /#3\s+bidder-a\s+price 12 \(typed\)\s+currency=EUR terms=For 3 boxes, 5 days\s+rejected/,
    );
    expect(text.stdout).toContain(
      'winner: bidder-b — bidder-b won: lowest price: 9 against 11 (bidder-c), 12 (bidder-a)',
    );
  });
});
