/**
 * kill -9 of a server holding 10,000 accepted but undelivered messages: after a restart every
 * message is delivered, and none twice to the agent once it had acknowledged it. The server is a
 * real `caxton serve` child process; its agent's LLM is the scripted stub in this process, which
 * counts how many times each message reached the model.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanup, startServe, tempDir, type ServeProcess } from '../cli/helpers/cli.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';
import { waitUntil } from '../helpers/wait.js';

const TOTAL = 10_200;
const MUST_HOLD = 10_000;

let stub: LlmStub;
let slow = true;
const seen = new Map<number, number>();

function tokenOf(hit: StubHit): number {
  const msgs = hit.body.messages as { role: string; content: string }[];
  const user = [...msgs].reverse().find((m) => m.role === 'user')!.content;
  return Number(/token:(\d+);/.exec(user)![1]);
}

beforeAll(async () => {
  assertBuilt();
  stub = await startLlmStub((hit) => {
    const n = tokenOf(hit);
    seen.set(n, (seen.get(n) ?? 0) + 1);
    return { content: `done ${n}`, delayMs: slow ? 100 : 0 };
  });
});

afterAll(async () => {
  await cleanup();
  await stub?.close();
});

function writeAgent(dir: string, concurrency: number): void {
  writeFileSync(
    join(dir, 'agents', 'worker.toml'),
    stringify({
      name: 'worker',
      capabilities: ['work'],
      system_prompt: 'You are worker.',
      messaging: { max_concurrency: concurrency },
    }),
  );
}

function pendingCount(dbFile: string): { pending: number; done: Set<string> } {
  const db = new Database(dbFile, { readonly: true });
  try {
    const pending = db.prepare("SELECT count(*) FROM deliveries WHERE state = 'pending'").pluck().get() as number;
    const done = new Set(
      db.prepare("SELECT message_id FROM deliveries WHERE state = 'done'").pluck().all() as string[],
    );
    return { pending, done };
  } finally {
    db.close();
  }
}

async function post(url: string, i: number): Promise<void> {
  const res = await fetch(`${url}/api/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: `job-${i}`, performative: 'request', receiver: 'worker', content: `token:${i};` }),
  });
  const text = await res.text();
  if (res.status !== 202) throw new Error(`message ${i}: ${res.status} ${text}`);
}

describe('durable delivery across kill -9', () => {
  it(
    'delivers every accepted message after a restart, none twice once acknowledged',
    // Alone it takes 30–100 s; beside the rest of the suite on two cores each phase (10,200 POSTs,
    // then 10,000 deliveries) has taken over a minute and a half.
    { timeout: 420_000 },
    async () => {
      const dir = tempDir('caxton-crash-');
      const { mkdirSync } = await import('node:fs');
      mkdirSync(join(dir, 'agents'));
      writeAgent(dir, 1);
      writeFileSync(
        join(dir, 'caxton.toml'),
        stringify({
          data_dir: './data',
          agents_dir: './agents',
          logging: { level: 'warn' },
          // Authentication off: this test is about delivery (test/auth covers the keys).
          auth: { enabled: false },
          llm: {
            default_provider: 'stub',
            providers: {
              stub: {
                type: 'openai',
                base_url: `${stub.url}/v1`,
                api_key_env: 'STUB_KEY',
                model: 'm',
                retry_base: '10ms',
              },
            },
          },
          messaging: { max_queue: 50_000 },
        }),
      );
      const args = ['--config', join(dir, 'caxton.toml')];
      let server: ServeProcess = await startServe({ cwd: dir, args, env: { STUB_KEY: 'k' } });

      // Accept all messages (32 at a time); the agent handles one at a time, 100 ms each.
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < TOTAL) await post(server.url, next++);
        }),
      );
      server.child.kill('SIGKILL');
      await server.exited;

      const dbFile = join(dir, 'data', 'caxton.db');
      const before = pendingCount(dbFile);
      expect(before.pending).toBeGreaterThanOrEqual(MUST_HOLD);
      expect(before.pending + before.done.size).toBe(TOTAL);
      const ackedBefore = [...before.done].map((id) => Number(id.slice(4)));

      // Restart with more concurrency and a fast model.
      slow = false;
      writeAgent(dir, 16);
      server = await startServe({ cwd: dir, args, env: { STUB_KEY: 'k' }, readyTimeoutMs: 60_000 });
      await waitUntil(() => pendingCount(dbFile).pending === 0, { timeoutMs: 300_000, intervalMs: 250 });
      server.child.kill('SIGTERM');
      await server.exited;

      const after = pendingCount(dbFile);
      expect(after.done.size).toBe(TOTAL);
      const never = Array.from({ length: TOTAL }, (_, i) => i).filter((i) => !seen.has(i));
      expect(never).toEqual([]);
      const twiceAfterAck = ackedBefore.filter((i) => seen.get(i) !== 1);
      expect(twiceAfterAck).toEqual([]);
      expect(ackedBefore.length).toBeGreaterThan(0);
    },
  );
});
