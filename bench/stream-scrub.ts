/**
 * What scrubbing the streamed text as one text costs the first token. A StreamScrubber holds back
 * the last characters of the stream that may still complete a secret's form, so with a secret
 * configured the first token may reach the client later than without.
 *
 * Two `caxton serve` processes (dist/cli/main.js), the same agent on the same OpenAI-compatible
 * model: one with a provider key configured (a 164-character `sk-proj-` key, the length OpenAI
 * issues today: its longest form, hex, is 328 characters), the other with none — the baseline,
 * measured in the same run, the requests alternating between the two. The model (an HTTP server
 * in this process) streams its answer in 4-character pieces, one every 5 ms. Measured: the time
 * from sending POST /api/v1/agents/{name}/invoke (Accept: text/event-stream) to the first `token`
 * event, for an ordinary answer and for one that opens with a near-miss (the key's first 24
 * characters, then other text), which must be held until it stops matching.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { secretVariants } from '../src/shared/secrets.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt, fmtMs, msSince, summarize, type Summary } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const REPS = Number(process.env.BENCH_STREAM_REPS ?? 60);
const WARMUP = 10;
const PIECE = 4;
const PACE_MS = 5;

const KEY = `sk-proj-${randomBytes(117).toString('base64url')}`;
const ANSWERS = {
  ordinary:
    'Here is the summary you asked for: the build passed, two tests were flaky, and the deploy went out at noon.',
  'near-miss': `${KEY.slice(0, 24)}… is how the key begins; the rest of it is not shown here, for obvious reasons.`,
} as const;
type Answer = keyof typeof ANSWERS;

/** An OpenAI-compatible model streaming the answer the request names, PIECE characters every PACE_MS. */
async function pacedModel(): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8').on('data', (c: string) => (raw += c));
    req.on('end', () => {
      void (async () => {
        const body = JSON.parse(raw) as { messages: { role: string; content: string }[] };
        const asked = body.messages.findLast((m) => m.role === 'user')?.content ?? '';
        const text = ANSWERS[(Object.keys(ANSWERS) as Answer[]).find((a) => asked.includes(a)) ?? 'ordinary'];
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const chunk = (delta: Record<string, unknown>, finish: string | null) =>
          `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'paced', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
        for (let i = 0; i < text.length; i += PIECE) {
          if (res.destroyed) return;
          res.write(chunk({ content: text.slice(i, i + PIECE) }, null));
          await sleep(PACE_MS);
        }
        res.write(chunk({}, 'stop'));
        res.end(
          `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'paced', choices: [], usage: { prompt_tokens: 10, completion_tokens: 30, total_tokens: 40 } })}\n\ndata: [DONE]\n\n`,
        );
      })();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1` };
}

interface Serve {
  child: ChildProcess;
  url: string;
  remove(): void;
}

async function startServe(modelUrl: string, withKey: boolean): Promise<Serve> {
  const tmp = tempDir('caxton-bench-stream-');
  const dir = tmp.path;
  mkdirSync(join(dir, 'agents'));
  writeFileSync(
    join(dir, 'agents', 'teller.toml'),
    'name = "teller"\ndescription = "streams an answer"\ncapabilities = ["telling"]\nsystem_prompt = "You tell."\n',
  );
  writeFileSync(
    join(dir, 'caxton.toml'),
    `data_dir = "data"\nagents_dir = "agents"\n[server]\nport = 0\n[metrics]\nenabled = false\n[logging]\nlevel = "error"\n[auth]\nenabled = false\n` +
      `[llm]\ndefault_provider = "paced"\n[llm.providers.paced]\ntype = "openai"\nbase_url = "${modelUrl}"\nmodel = "paced"\nmax_retries = 0\n${withKey ? 'api_key_env = "BENCH_STREAM_KEY"\n' : ''}`,
  );
  const child = spawn(
    process.execPath,
    [join(process.cwd(), 'dist/cli/main.js'), 'serve', '--config', join(dir, 'caxton.toml')],
    {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, ...(withKey && { BENCH_STREAM_KEY: KEY }) },
    },
  );
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      const m = /caxton listening on (http:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code: number | null) =>
      reject(new Error(`caxton serve exited (${code}) before listening:\n${stderr}`)),
    );
  });
  return { child, url, remove: tmp.remove };
}

async function stopServe(s: Serve): Promise<void> {
  if (s.child.exitCode === null && s.child.signalCode === null) {
    const exited = new Promise<void>((r) => s.child.once('exit', () => r()));
    s.child.kill('SIGTERM');
    await exited;
  }
  s.remove();
}

/** One streamed invoke: ms to the first token event, ms to the end, and the text streamed. */
async function streamed(base: string, answer: Answer): Promise<{ first: number; total: number; text: string }> {
  const t0 = process.hrtime.bigint();
  const res = await fetch(`${base}/api/v1/agents/teller/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ request: `tell me the ${answer} one` }),
  });
  if (res.status !== 200) throw new Error(`invoke answered ${res.status}: ${await res.text()}`);
  const decoder = new TextDecoder();
  let buf = '';
  let first = Number.NaN;
  const reader = res.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    if (Number.isNaN(first) && buf.includes('event: token\n')) first = msSince(t0);
  }
  const total = msSince(t0);
  const text = [...buf.matchAll(/event: token\ndata: (.*)\n/g)]
    .map((m) => (JSON.parse(m[1]!) as { text: string }).text)
    .join('');
  if (Number.isNaN(first)) throw new Error(`no token event in the stream:\n${buf.slice(0, 500)}`);
  return { first, total, text };
}

export const streamScrubSuite: Suite = {
  name: 'stream-scrub',
  description:
    'time to the first streamed token with a provider key configured and without (the stream scrubber holds back what may complete a secret)',
  async run(): Promise<SuiteReport> {
    const model = await pacedModel();
    const servers = { with: await startServe(model.url, true), without: await startServe(model.url, false) };
    note(`caxton serve with a key (pid ${servers.with.child.pid}) and without (pid ${servers.without.child.pid})`);
    try {
      const samples: Record<Answer, Record<'with' | 'without', { first: number[]; total: number[] }>> = {
        ordinary: { with: { first: [], total: [] }, without: { first: [], total: [] } },
        'near-miss': { with: { first: [], total: [] }, without: { first: [], total: [] } },
      };
      for (const answer of Object.keys(ANSWERS) as Answer[]) {
        for (const which of ['with', 'without'] as const) {
          const { text } = await streamed(servers[which].url, answer);
          if (text !== ANSWERS[answer])
            throw new Error(`the ${which} server streamed ${JSON.stringify(text)}, not the answer`);
          for (let i = 0; i < WARMUP; i++) await streamed(servers[which].url, answer);
        }
        for (let i = 0; i < REPS; i++) {
          // Alternating which goes first, so that neither always runs right after the other.
          for (const which of i % 2 === 0 ? (['with', 'without'] as const) : (['without', 'with'] as const)) {
            const r = await streamed(servers[which].url, answer);
            samples[answer][which].first.push(r.first);
            samples[answer][which].total.push(r.total);
          }
        }
      }
      const rows: Row[] = [];
      const raw: Record<string, unknown> = { reps: REPS, piece_chars: PIECE, pace_ms: PACE_MS, key_chars: KEY.length };
      const p = (s: Summary) => `p50 ${fmtMs(s.p50)} / p99 ${fmtMs(s.p99)}`;
      for (const answer of Object.keys(ANSWERS) as Answer[]) {
        const w = summarize(samples[answer].with.first);
        const wo = summarize(samples[answer].without.first);
        const tw = summarize(samples[answer].with.total);
        const two = summarize(samples[answer].without.total);
        rows.push({
          metric: `time to first token, ${answer} answer`,
          value: p(w),
          baseline: `${p(wo)} (no secret configured)`,
        });
        rows.push({
          metric: `first token later by (p50), ${answer} answer`,
          value: fmtMs(w.p50 - wo.p50),
          baseline: '0',
        });
        rows.push({ metric: `whole stream, ${answer} answer`, value: p(tw), baseline: p(two) });
        raw[answer] = { with: { first: w, total: tw }, without: { first: wo, total: two } };
      }
      const longest = Math.max(...secretVariants(KEY).map((v) => v.length));
      const fixedMs = Math.ceil((longest - 1) / PIECE) * PACE_MS;
      raw.longest_form_chars = longest;
      return {
        rows,
        raw,
        notes: [
          `${REPS} streamed invokes per server and answer, alternated, after ${WARMUP} unmeasured; the model streams ${PIECE} characters every ${PACE_MS} ms.`,
          `The key is ${KEY.length} characters; its longest form (hex) ${longest}. A fixed window of that length minus one would hold the first token until ${longest - 1} characters had arrived: ${fmt(fixedMs, 0)} ms at this pace.`,
        ],
      };
    } finally {
      await Promise.all([stopServe(servers.with), stopServe(servers.without)]);
      await new Promise<void>((r) => model.server.close(() => r()));
    }
  },
};
