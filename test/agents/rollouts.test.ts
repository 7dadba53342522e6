/**
 * Blue-green rollouts on a real server with authentication and
 * the scripted provider, whose answer quotes the system prompt so each answer says which version
 * ran: the new version answers only when addressed as NAME@VERSION (REST invoke, the OpenAI
 * model name, the real CLI); promote switches new conversations while an open one keeps its
 * version; rollback ends a rollout and keeps the live version (the rolled-back candidate stays
 * reachable as NAME@VERSION, as every kept version); a running rollout survives a restart; bad
 * input (a second rollout, a deploy while one runs, promote with none, a version that does not
 * exist, a blue-green of a new agent) is refused clearly and changes nothing.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tomlAgent } from '../helpers/http.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { assertBuilt } from '../cli/helpers/cli.js';
import { RolloutServer } from './rollout-server.js';

const v = (n: number) => tomlAgent('teller').replace('You are teller.', `You are teller v${n}.`);

let dir: string;
let server: RolloutServer;
const api = <T = unknown>(method: string, path: string, body?: string, contentType?: string) =>
  server.api<T>(method, path, body, contentType);
const cli = (...args: string[]) => server.cli(...args);

/** Which version answered: the scripted reply quotes the system prompt. */
async function ask(agent: string, conversation?: string): Promise<string> {
  const r = await api<{ content: string }>(
    'POST',
    `/api/v1/agents/${encodeURIComponent(agent)}/invoke`,
    JSON.stringify({ request: 'who?', ...(conversation && { conversation_id: conversation }) }),
    'application/json',
  );
  expect(r.status, r.text).toBe(200);
  return /You are teller (v\d+)/.exec(r.json.content)?.[1] ?? r.json.content;
}

async function start(): Promise<void> {
  server ??= new RolloutServer(dir);
  await server.start();
}

beforeAll(async () => {
  assertBuilt();
  dir = makeTempDir('caxton-rollouts-');
  writeFileSync(join(dir, 'replies.toml'), '[[rules]]\ncontent = "{{system}}"\n');
  writeFileSync(join(dir, 'teller-v2.toml'), v(2));
  await start();
  expect((await api('POST', '/api/v1/agents', v(1))).status).toBe(201);
});

afterAll(async () => {
  await server?.close();
  removeTempDirs();
});

describe('blue-green', () => {
  it('deploys the new version beside the live one: only NAME@VERSION reaches it', async () => {
    const r = await cli('agent', 'deploy', 'teller-v2.toml', '--strategy', 'blue-green');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('deployed teller version 2 beside the live version (blue-green)');
    expect(await ask('teller')).toBe('v1');
    expect(await ask('teller@2')).toBe('v2');
    expect(await ask('teller@1')).toBe('v1');
    // The OpenAI-compatible model name addresses it too.
    const chat = await api<{ choices: { message: { content: string } }[] }>(
      'POST',
      '/v1/chat/completions',
      JSON.stringify({ model: 'teller@2', messages: [{ role: 'user', content: 'who?' }] }),
      'application/json',
    );
    expect(chat.status, chat.text).toBe(200);
    expect(chat.json.choices[0]!.message.content).toContain('You are teller v2.');
    const status = await api<{
      running: boolean;
      live_version: number;
      rollout: { stable_version: number; candidate_version: number; state: string; started_by: string };
    }>('GET', '/api/v1/agents/teller/rollout');
    expect(status.json).toMatchObject({
      running: true,
      live_version: 1,
      rollout: { stable_version: 1, candidate_version: 2, state: 'running', started_by: 'key:admin' },
    });
    const shown = await cli('agent', 'rollout', 'status', 'teller');
    expect(shown.stdout).toContain('candidate: version 2 (reachable as teller@2)');
  });

  it('refuses what does not fit a running rollout, and changes nothing', async () => {
    const second = await api<{ error: { code: string; message: string } }>(
      'PUT',
      '/api/v1/agents/teller?strategy=blue-green',
      v(3),
    );
    expect(second.status).toBe(409);
    expect(second.json.error.code).toBe('rollout_in_progress');
    expect(second.json.error.message).toContain('caxton agent promote teller');
    expect((await api<{ error: { code: string } }>('PUT', '/api/v1/agents/teller', v(3))).json.error.code).toBe(
      'rollout_in_progress',
    );
    const notLive = await api<{ error: { code: string; message: string } }>(
      'POST',
      '/api/v1/agents/teller@7/invoke',
      JSON.stringify({ request: 'x' }),
      'application/json',
    );
    expect(notLive.status).toBe(404);
    expect(notLive.json.error.message).toContain('agent "teller" has no version 7 (its newest is 2');
    const fresh = await api<{ error: { code: string } }>(
      'PUT',
      '/api/v1/agents/nobody?strategy=blue-green',
      tomlAgent('nobody'),
    );
    expect(fresh.status).toBe(404);
    const badStrategy = await api('PUT', '/api/v1/agents/teller?strategy=canary-ish', v(3));
    expect(badStrategy.status).toBe(400);
    expect(await ask('teller')).toBe('v1');
    expect((await api<{ total: number }>('GET', '/api/v1/agents/teller/versions')).json.total).toBe(2);
  });

  it('survives a restart: the rollout is still running and NAME@VERSION still answers', async () => {
    await server.close();
    await start();
    expect((await api<{ running: boolean }>('GET', '/api/v1/agents/teller/rollout')).json.running).toBe(true);
    expect(await ask('teller@2')).toBe('v2');
    expect(await ask('teller')).toBe('v1');
  });

  it('a FIPA-ACL message addressed to NAME@VERSION reaches that version; a version that is not addressable is refused clearly', async () => {
    type Sent = {
      conversation: { state: string };
      messages: { performative: string; sender: string; content: string }[];
    };
    const send = (receiver: string) =>
      api<Sent>(
        'POST',
        '/api/v1/messages?wait=10',
        JSON.stringify({ performative: 'request', receiver, content: 'who?', sender: 'user' }),
        'application/json',
      );
    const toCandidate = await send('teller@2');
    expect(toCandidate.status, toCandidate.text).toBe(200);
    const reply = toCandidate.json.messages.find((m) => m.performative === 'inform')!;
    expect(reply.sender).toBe('teller@2');
    expect(reply.content).toContain('You are teller v2.');
    const toLive = await send('teller');
    expect(toLive.json.messages.find((m) => m.performative === 'inform')!.content).toContain('You are teller v1.');
    const bad = await api<{ failure?: { message: string }; messages?: { content: unknown }[] }>(
      'POST',
      '/api/v1/messages?wait=10',
      JSON.stringify({ performative: 'request', receiver: 'teller@9', content: 'who?', sender: 'user' }),
      'application/json',
    );
    expect(bad.text).toContain('\\"teller@9\\" is not a version agent \\"teller\\" keeps');
  });

  it('promote switches new conversations; a conversation already open keeps its version', async () => {
    expect(await ask('teller', 'conv-open')).toBe('v1');
    const p = await cli('agent', 'promote', 'teller');
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/^promoted teller: version 2 is live \(recorded as version 3\)/m);
    expect(await ask('teller')).toBe('v2');
    expect(await ask('teller', 'conv-new')).toBe('v2');
    expect(await ask('teller', 'conv-open')).toBe('v1');
    const h = await api<{
      current: number;
      versions: { version: number; how: string; restored_from: number | null }[];
    }>('GET', '/api/v1/agents/teller/versions');
    expect(h.json.current).toBe(3);
    expect(h.json.versions[0]).toMatchObject({ version: 3, how: 'promotion', restored_from: 2 });
    const none = await api<{ error: { code: string } }>('POST', '/api/v1/agents/teller/promote');
    expect(none.status).toBe(409);
    expect(none.json.error.code).toBe('no_rollout');
    const events = await api<{ events: { type: string }[] }>('GET', '/api/v1/events?agent=teller');
    expect(events.json.events.map((e) => e.type)).toEqual(
      expect.arrayContaining(['rollout.started', 'rollout.promoted']),
    );
  });

  it('rollback during a blue-green rollout ends it: the candidate gets no traffic, the live version stays', async () => {
    expect((await api('PUT', '/api/v1/agents/teller?strategy=blue-green', v(4))).status).toBe(200);
    expect(await ask('teller@4')).toBe('v4');
    const r = await cli('agent', 'rollback', 'teller');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(
      'rolled back the blue-green rollout of teller: version 4 gets no more traffic (NAME@VERSION still reaches it); version 3 stays live',
    );
    expect(await ask('teller')).toBe('v2');
    // Kept in the history, the rolled-back candidate still answers when addressed.
    expect(await ask('teller@4')).toBe('v4');
    const status = await api<{ running: boolean; rollout: { state: string; reason: string } }>(
      'GET',
      '/api/v1/agents/teller/rollout',
    );
    expect(status.json).toMatchObject({
      running: false,
      rollout: { state: 'rolled_back', reason: 'rolled back by key:admin' },
    });
    // And the instant switch back after a promotion is the plain rollback: version 1's content again.
    expect(await ask('teller', 'conv-after')).toBe('v2');
  });
});
