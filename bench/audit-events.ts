/**
 * What the audit trail and the agent event store cost on the hot path: two Caxton servers in this
 * process, one with `[audit]` and `[events]` on (the defaults), one with both off, beside a
 * fastify JSON echo, measured in alternated rounds (echo, on, off) so that the machine's load
 * drifts over all three alike. Two paths: a context-mode invoke of a zero-latency agent (one
 * audit row, one execution.finished event) and a REST message submission (one audit row, one
 * message.sent and one message.received event).
 */
import type { CaxtonServer } from '../src/server/index.js';
import { startHelloWorld } from './lib/baseline.js';
import { registerSink } from './lib/bench-agents.js';
import { startInvokeFloor } from './lib/invoke-floor.js';
import { startSubmitFloor } from './lib/submit-floor.js';
import { load, type LoadResult } from './lib/load.js';
import { note } from './lib/progress.js';
import { startScriptedServer } from './lib/scripted-server.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { envNumber, fmt, median } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const env = envNumber;
const ROUNDS = env('BENCH_ROUNDS', 3);
const SECONDS = env('BENCH_DURATION', 3);
const CONNECTIONS = env('BENCH_CONNECTIONS', 10);
const CONTEXT_TARGET = 0.3;
const SUBMIT_TARGET = 0.4;

const SCRIPT = `[[rules]]\nname = "text"\ncontent = "ok: {{request}}"\n`;
const AGENT = `name = "text"\nversion = "1.0.0"\ndescription = "bench"\ncapabilities = ["benchmarking"]\nsystem_prompt = "Answer briefly."\n\n[execution]\nisolation = "context"\n`;
const INVOKE_BODY = JSON.stringify({ request: 'hello' });
const SUBMIT_BODY = JSON.stringify({ performative: 'inform', capability: 'sink', content: 'benchmark message' });
const JSON_HEADERS = { 'content-type': 'application/json' };

async function startCaxton(dir: string, on: boolean): Promise<CaxtonServer> {
  const server = await startScriptedServer({
    dir,
    script: SCRIPT,
    agent: AGENT,
    toml: `[messaging]\nmax_queue = 10000000\n[events]\nenabled = ${on}\n[audit]\nenabled = ${on}\n`,
  });
  registerSink(server);
  for (const [url, body, status] of [
    [`${server.url}/api/v1/agents/text/invoke`, INVOKE_BODY, 200],
    [`${server.url}/api/v1/messages`, SUBMIT_BODY, 202],
  ] as const) {
    const p = await fetch(url, { method: 'POST', headers: JSON_HEADERS, body });
    if (p.status !== status) throw new Error(`${url} → ${p.status}: ${(await p.text()).slice(0, 300)}`);
  }
  return server;
}

export const auditEventsSuite: Suite = {
  name: 'audit-events',
  description: `audit trail and agent events on vs off: context invoke and REST submit beside a fastify echo, ${ROUNDS} alternated rounds of ${SECONDS}s × ${CONNECTIONS} connections`,
  async run(): Promise<SuiteReport> {
    const hw = await startHelloWorld();
    const dirOn = tempDir('caxton-bench-ae-on-');
    const dirOff = tempDir('caxton-bench-ae-off-');
    const dirFloor = tempDir('caxton-bench-ae-floor-');
    const floor = await startInvokeFloor(dirFloor.path);
    const dirSubmit = tempDir('caxton-bench-ae-submit-');
    const submitFloor = await startSubmitFloor(dirSubmit.path);
    let submitCount = '';
    const on = await startCaxton(dirOn.path, true);
    const off = await startCaxton(dirOff.path, false);
    const runs: Record<string, LoadResult[]> = {
      echo: [],
      floor: [],
      submit_floor: [],
      invoke_on: [],
      invoke_off: [],
      submit_on: [],
      submit_off: [],
    };
    const ratios: Record<string, number[]> = {
      floor: [],
      submit_floor: [],
      invoke_on: [],
      invoke_off: [],
      submit_on: [],
      submit_off: [],
    };
    try {
      const go = (url: string, body: string) =>
        load({ url, method: 'POST', headers: JSON_HEADERS, body, duration: SECONDS, connections: CONNECTIONS });
      // Warm every path once.
      await go(`${hw.url}echo`, INVOKE_BODY);
      await go(`${floor.url}/api/v1/agents/text/invoke`, INVOKE_BODY);
      await go(`${submitFloor.url}/api/v1/messages`, SUBMIT_BODY);
      for (const s of [on, off]) {
        await load({
          url: `${s.url}/api/v1/agents/text/invoke`,
          method: 'POST',
          headers: JSON_HEADERS,
          body: INVOKE_BODY,
          duration: 1,
          connections: CONNECTIONS,
        });
        await load({
          url: `${s.url}/api/v1/messages`,
          method: 'POST',
          headers: JSON_HEADERS,
          body: SUBMIT_BODY,
          duration: 1,
          connections: CONNECTIONS,
        });
      }
      for (let r = 0; r < ROUNDS; r++) {
        note(`round ${r + 1} of ${ROUNDS}`);
        const echo = await go(`${hw.url}echo`, INVOKE_BODY);
        runs.echo!.push(echo);
        const fl = await go(`${floor.url}/api/v1/agents/text/invoke`, INVOKE_BODY);
        runs.floor!.push(fl);
        ratios.floor!.push(fl.req_per_s / echo.req_per_s);
        const sf = await go(`${submitFloor.url}/api/v1/messages`, SUBMIT_BODY);
        runs.submit_floor!.push(sf);
        ratios.submit_floor!.push(sf.req_per_s / echo.req_per_s);
        for (const [name, s] of [
          ['on', on],
          ['off', off],
        ] as const) {
          const inv = await go(`${s.url}/api/v1/agents/text/invoke`, INVOKE_BODY);
          const sub = await go(`${s.url}/api/v1/messages`, SUBMIT_BODY);
          runs[`invoke_${name}`]!.push(inv);
          runs[`submit_${name}`]!.push(sub);
          ratios[`invoke_${name}`]!.push(inv.req_per_s / echo.req_per_s);
          ratios[`submit_${name}`]!.push(sub.req_per_s / echo.req_per_s);
        }
      }
    } finally {
      await on.close();
      await off.close();
      await floor.close();
      await submitFloor.close();
      submitCount = `${submitFloor.acknowledged()} of ${submitFloor.accepted()}`;
      dirSubmit.remove();
      await hw.close();
      dirFloor.remove();
      dirOn.remove();
      dirOff.remove();
    }
    const rps = (k: string) => median(runs[k]!.map((l) => l.req_per_s));
    const range = (k: string) => {
      const xs = ratios[k]!;
      return `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`;
    };
    const echo = `${fmt(rps('echo'), 0)} req/s fastify JSON echo (median of ${ROUNDS})`;
    const rows: Row[] = [
      {
        metric: "invoke floor: a minimal fastify server writing an invoke's three rows (bench/lib/invoke-floor.ts)",
        value: `${fmt(rps('floor'), 0)} req/s (${range('floor')} × echo)`,
        baseline: echo,
      },
      {
        metric: 'context invoke, [audit] and [events] on',
        value: `${fmt(rps('invoke_on'), 0)} req/s (${range('invoke_on')} × echo)`,
        baseline: echo,
        target: `≥ ${CONTEXT_TARGET} × echo`,
        verdict: median(ratios.invoke_on!) >= CONTEXT_TARGET ? 'pass' : 'fail',
      },
      {
        metric: 'context invoke, [audit] and [events] on, against the floor',
        value: `${fmt(median(ratios.invoke_on!) / median(ratios.floor!))} × the floor`,
        baseline: `floor ${fmt(rps('floor'), 0)} req/s`,
      },
      {
        metric: 'context invoke, both off',
        value: `${fmt(rps('invoke_off'), 0)} req/s (${range('invoke_off')} × echo)`,
        baseline: echo,
      },
      {
        metric:
          "submit floor: a minimal server committing a submission's rows and records on the event loop (bench/lib/submit-floor.ts)",
        value: `${fmt(rps('submit_floor'), 0)} req/s (${range('submit_floor')} × echo); acknowledged ${submitCount} accepted`,
        baseline: echo,
      },
      {
        metric: 'REST submit, [audit] and [events] on',
        value: `${fmt(rps('submit_on'), 0)} req/s (${range('submit_on')} × echo)`,
        baseline: echo,
        target: `≥ ${SUBMIT_TARGET} × echo`,
        verdict: median(ratios.submit_on!) >= SUBMIT_TARGET ? 'pass' : 'fail',
      },
      {
        metric: 'REST submit, both off',
        value: `${fmt(rps('submit_off'), 0)} req/s (${range('submit_off')} × echo)`,
        baseline: echo,
      },
      {
        metric: 'on / off',
        value: `invoke ${fmt(median(ratios.invoke_on!) / median(ratios.invoke_off!))}, submit ${fmt(median(ratios.submit_on!) / median(ratios.submit_off!))}`,
        baseline: '1.00 = free',
      },
    ];
    return { rows, raw: { runs, ratios } };
  },
};
