/**
 * `caxton message show` prints the signer, and `caxton key signing` / `key rotate --signing` manage
 * the signing keys: real child processes against a real `caxton serve` with `[messaging] signing`,
 * whose agent answers through the scripted provider.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, expectExit, parseJson, startScriptedServe, tomlAgent, type ScriptedServe } from './helpers/cli.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

describe('caxton with signed messages', () => {
  let cli: ScriptedServe['cli'];

  beforeAll(async () => {
    ({ cli } = await startScriptedServe({
      prefix: 'caxton-sign-cli-',
      config: '\n[messaging]\nsigning = true\n',
      agents: { 'helper.toml': tomlAgent('helper', { capabilities: ['answering'] }) },
    }));
  });
  afterAll(cleanup);

  it('message show prints who signed the request and the agent’s answer', async () => {
    const sent = await cli(
      'message',
      'send',
      '--to',
      'helper',
      '--performative',
      'request',
      '--content',
      'q',
      '--wait',
      '30',
      '--json',
    );
    expectExit(sent, 0);
    const out = parseJson<Json>(sent);
    const answer = out.messages.find((m: Json) => m.sender === 'helper' && m.performative === 'inform');
    const req = await cli('message', 'show', out.id);
    expectExit(req, 0);
    expect(req.stdout).toMatch(/^signed by: {4}node on node local \(key sk_[\w-]+\): valid$/m);
    const ans = await cli('message', 'show', answer.id, '--json');
    expectExit(ans, 0);
    expect(parseJson<Json>(ans).signer).toMatchObject({ owner: 'agent:helper', node: 'local', valid: true });
  });

  it('key signing lists the keys; key rotate --signing retires the node key', async () => {
    const list = await cli('key', 'signing');
    expectExit(list, 0);
    expect(list.stdout).toMatch(/^ID\s+OWNER\s+NODE\s+STATE/m);
    expect(list.stdout).toMatch(/agent:helper\s+local\s+active/);
    const rotated = await cli('key', 'rotate', '--signing', 'node');
    expectExit(rotated, 0);
    expect(rotated.stdout).toMatch(/^new signing key sk_[\w-]+ for node on node local; sk_[\w-]+ is retired/);
    const json = await cli('key', 'rotate', '--signing', 'helper', '--json');
    expectExit(json, 0);
    expect(parseJson<Json>(json)).toMatchObject({
      key: { owner: 'agent:helper', state: 'active' },
      retired: { state: 'retired' },
    });
    const bad = await cli('key', 'rotate', '--signing', '-nope');
    expect(bad.code).not.toBe(0);
  });
});
