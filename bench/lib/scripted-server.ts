/**
 * A Caxton server in this process with a scripted model (`script.toml`) and one agent deployed
 * from TOML: what the in-process benches compare with a setting on and off. Metrics, logs and
 * (unless `toml` says otherwise) local spans are quiet, and auth is off.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadServerConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/observability/index.js';
import { startServer, type CaxtonServer } from '../../src/server/index.js';
import { load, type LoadResult } from './load.js';
import { note } from './progress.js';
import { fmt, msSince } from './stats.js';

/**
 * A Caxton server in this process on a caxton.toml written into `dir`: port 0, metrics off, auth off
 * (it has its own suite), warn-level logs on stderr (stdout carries only the result tables), then
 * `toml`. An empty environment: the shell's CAXTON_* variables must not change what is measured.
 */
export async function startQuietServer(dir: string, toml = ''): Promise<{ server: CaxtonServer; ms: number }> {
  const file = join(dir, 'caxton.toml');
  writeFileSync(
    file,
    `data_dir = "data"\nagents_dir = "agents"\n[server]\nhost = "127.0.0.1"\nport = 0\n[metrics]\nenabled = false\n[logging]\nlevel = "warn"\n${toml}`,
  );
  const config = loadServerConfig({ file, env: { CAXTON_AUTH__ENABLED: 'false' } });
  const logger = createLogger(config.logging.level, pino.destination({ dest: 2, sync: true }));
  const t0 = process.hrtime.bigint();
  const server = await startServer({ config, logger });
  return { server, ms: msSince(t0) };
}

export async function startScriptedServer(o: {
  dir: string;
  /** The scripted model's rules (script.toml). */
  script: string;
  /** The agent deployed, as TOML. */
  agent: string;
  /** caxton.toml sections after [llm] (the setting the bench turns on and off). */
  toml: string;
  /** The provider's simulated latency. */
  latencyMs?: number;
}): Promise<CaxtonServer> {
  writeFileSync(join(o.dir, 'script.toml'), o.script);
  const { server } = await startQuietServer(
    o.dir,
    `[llm]\ndefault_provider = "bench"\n[llm.providers.bench]\ntype = "scripted"\nscript = "script.toml"\n` +
      (o.latencyMs !== undefined && o.latencyMs > 0 ? `latency = "${o.latencyMs}ms"\n` : '') +
      o.toml,
  );
  const r = await fetch(`${server.url}/api/v1/agents`, {
    method: 'POST',
    headers: { 'content-type': 'application/toml' },
    body: o.agent,
  });
  if (r.status !== 201) {
    await server.close();
    throw new Error(`deploy → ${r.status}: ${(await r.text()).slice(0, 300)}`);
  }
  return server;
}

/** Invokes `agent` once and throws unless it answers 200 with `expect` in its body (a warm, working server). */
export async function invokeOnce(server: CaxtonServer, agent: string, body: string, expect = ''): Promise<void> {
  const p = await fetch(`${server.url}/api/v1/agents/${agent}/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  const text = await p.text();
  if (p.status !== 200 || !text.includes(expect)) throw new Error(`invoke → ${p.status}: ${text.slice(0, 300)}`);
}

/**
 * `rounds` alternated autocannon runs of `POST path` (with the key's body) on each server, after one uncounted run each;
 * throws on any non-2xx or error. Results by server, in round order.
 */
export async function alternateLoad<K extends string>(
  servers: Record<K, CaxtonServer>,
  o: {
    path: string;
    body: string | Record<K, string>;
    seconds: number;
    connections: number;
    rounds: number;
    label?: string;
  },
): Promise<Record<K, LoadResult[]>> {
  const keys = Object.keys(servers) as K[];
  const out = Object.fromEntries(keys.map((k) => [k, [] as LoadResult[]])) as Record<K, LoadResult[]>;
  const go = (k: K) =>
    load({
      url: `${servers[k].url}${o.path}`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof o.body === 'string' ? o.body : o.body[k],
      duration: o.seconds,
      connections: o.connections,
    });
  for (const k of keys) await go(k);
  for (let r = 0; r < o.rounds; r++)
    for (const k of keys) {
      const res = await go(k);
      if (res.non2xx + res.errors > 0) throw new Error(`${k}: ${res.non2xx} non-2xx, ${res.errors} errors`);
      out[k].push(res);
      note(
        `${o.label ?? ''}round ${r + 1}/${o.rounds} ${k}: ${fmt(res.req_per_s, 0)} req/s, p50 ${res.latency_ms.p50} ms`,
      );
    }
  return out;
}
