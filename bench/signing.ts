/**
 * ADR 0059 — what signed messages cost.
 *
 *  1. CPU per message of signing (canonical form + Ed25519) and of verifying, on a typical
 *     request (~200 bytes of text content, two X- params), one after another on one core.
 *  2. Durable messaging (accept, deliver, acknowledge through SQLite, one-way informs to
 *     in-process handlers) with `[messaging] signing` off and on, in the same run, alternated
 *     (off, on, off, on...): messages per second and CPU per message. With signing on, each
 *     delivery also reads its message back from SQLite to verify the stored copy.
 */
import { join } from 'node:path';
import { AgentRegistry, parseAgent } from '../src/agents/index.js';
import { SigningKeyStore } from '../src/auth/index.js';
import { loadServerConfig } from '../src/config/index.js';
import { MessageSigner, newConversationId, newMessageId, type AclMessage } from '../src/messaging/index.js';
import { MESSAGING_MIGRATIONS, MessageBus } from '../src/messaging/sqlite/index.js';
import { migrate, openDatabase } from '../src/storage/index.js';
import { note } from './lib/progress.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt } from './lib/stats.js';
import { tempDir } from './lib/tmp.js';

const env = (name: string, def: number) => {
  const v = process.env[name];
  return v ? Number(v) : def;
};
const MICRO = env('BENCH_SIGN_MICRO', 20_000);
const DURABLE = env('BENCH_SIGN_DURABLE', 50_000);
const REPS = env('BENCH_SIGN_REPS', 3);
const AGENTS = 20;
const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

function message(i: number): AclMessage {
  return {
    id: newMessageId(),
    performative: 'inform',
    sender: 'user',
    receivers: [`agent-${i % AGENTS}`],
    content:
      `Order ${i}: 3 units of part 7731-B to the Rotterdam warehouse, delivery before Friday, invoice to account 0042. `.repeat(
        2,
      ),
    conversation_id: newConversationId(),
    params: { 'X-priority': 'normal', 'X-order': String(i) },
    timestamp: new Date().toISOString(),
    chain: [],
    on_behalf_of: 'key:bench',
  };
}

/** Agents deployed in the registry (so named receivers route); in-process handlers run their deliveries. */
function registry(): AgentRegistry {
  const reg = new AgentRegistry();
  const now = new Date().toISOString();
  for (let i = 0; i < AGENTS; i++) {
    const r = parseAgent(`name = "agent-${i}"\ncapabilities = ["cap"]\nsystem_prompt = "x"\n`, {
      format: 'toml',
      file: `agent-${i}.toml`,
    });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    reg.upsert({
      definition: r.definition,
      format: 'toml',
      origin: { kind: 'api' },
      revision: 1,
      deployed_at: now,
      updated_at: now,
    });
  }
  return reg;
}

function micro(signer: MessageSigner): { sign_us: number; verify_us: number } {
  const msgs = Array.from({ length: MICRO }, (_, i) => message(i));
  for (let i = 0; i < 1000; i++) signer.verify(signer.sign(msgs[i]!, false));
  const c0 = process.cpuUsage();
  const signed = msgs.map((m) => signer.sign(m, false));
  const signUs = (cpuMs(process.cpuUsage(c0)) * 1000) / MICRO;
  const c1 = process.cpuUsage();
  let bad = 0;
  for (const m of signed) if (!signer.verify(m).ok) bad++;
  const verifyUs = (cpuMs(process.cpuUsage(c1)) * 1000) / MICRO;
  if (bad > 0) throw new Error(`${bad} signatures did not verify`);
  return { sign_us: signUs, verify_us: verifyUs };
}

async function durable(signing: boolean): Promise<{ per_s: number; cpu_us_per_msg: number }> {
  const dir = tempDir('caxton-bench-sign-');
  try {
    const db = openDatabase(dir.path);
    migrate(db, MESSAGING_MIGRATIONS);
    const config = {
      ...loadServerConfig({ env: {}, cwd: dir.path }).messaging,
      max_queue: 10_000_000,
      signing,
    };
    const signer = signing
      ? new MessageSigner(new SigningKeyStore(db, { dir: join(dir.path, 'signing'), node: 'bench' }))
      : undefined;
    const bus = new MessageBus({ db, registry: registry(), config, ...(signer && { signer }) });
    let delivered = 0;
    let target = 0;
    let allDone!: () => void;
    for (let i = 0; i < AGENTS; i++)
      bus.registerHandler(`agent-${i}`, () => {
        if (++delivered === target) allDone();
        return undefined;
      });
    bus.start();
    const run = async (n: number) => {
      delivered = 0;
      target = n;
      const done = new Promise<void>((r) => (allDone = r));
      const msgs = Array.from({ length: n }, (_, i) => message(i));
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await Promise.all(msgs.map((m) => bus.send(m, { newId: true, newConversation: true })));
      await done;
      await bus.settled();
      return { ms: performance.now() - t0, cpu: cpuMs(process.cpuUsage(c0)) };
    };
    await run(2_000);
    const r = await run(DURABLE);
    await bus.close();
    db.close();
    return { per_s: (DURABLE / r.ms) * 1000, cpu_us_per_msg: (r.cpu * 1000) / DURABLE };
  } finally {
    dir.remove();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export const signingSuite: Suite = {
  name: 'signing',
  description: `Ed25519 message signatures (ADR 0059): sign and verify CPU per message, durable messaging with signing off and on (${DURABLE.toLocaleString('en')} messages × ${REPS} alternated reps)`,
  async run(): Promise<SuiteReport> {
    const dir = tempDir('caxton-bench-sign-keys-');
    let m: { sign_us: number; verify_us: number };
    try {
      const db = openDatabase(dir.path);
      m = micro(new MessageSigner(new SigningKeyStore(db, { dir: join(dir.path, 'signing'), node: 'bench' })));
      db.close();
    } finally {
      dir.remove();
    }
    const off: { per_s: number; cpu_us_per_msg: number }[] = [];
    const on: { per_s: number; cpu_us_per_msg: number }[] = [];
    for (let i = 0; i < REPS; i++) {
      note(`durable rep ${i + 1}/${REPS}: signing off`);
      off.push(await durable(false));
      note(`durable rep ${i + 1}/${REPS}: signing on`);
      on.push(await durable(true));
    }
    const offRate = median(off.map((r) => r.per_s));
    const onRate = median(on.map((r) => r.per_s));
    const offCpu = median(off.map((r) => r.cpu_us_per_msg));
    const onCpu = median(on.map((r) => r.cpu_us_per_msg));
    const rows: Row[] = [
      { metric: 'sign: canonical form + Ed25519, CPU per message', value: `${fmt(m.sign_us)} µs`, baseline: '—' },
      { metric: 'verify: canonical form + Ed25519, CPU per message', value: `${fmt(m.verify_us)} µs`, baseline: '—' },
      {
        metric: 'durable messaging, signing on (median of reps)',
        value: `${fmt(onRate, 0)} msg/s`,
        baseline: `${fmt(offRate, 0)} msg/s (signing off, same run, alternated)`,
      },
      {
        metric: 'durable messaging, CPU per message',
        value: `${fmt(onCpu)} µs`,
        baseline: `${fmt(offCpu)} µs (signing off)`,
      },
    ];
    return {
      rows,
      notes: [`on / off throughput: ${fmt(onRate / offRate)}; extra CPU per message: ${fmt(onCpu - offCpu)} µs`],
      raw: { micro: m, durable: { off, on } },
    };
  },
};
