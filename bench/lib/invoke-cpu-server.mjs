/**
 * One server of bench/invoke-cpu.ts, alone in its process: `caxton DIR` (the build in DIR/dist
 * with [audit] and [events] on, the audit-events suite's agent and script), `floor` (bench/lib/
 * invoke-floor.ts) or `echo` (a fastify JSON echo). Prints its invoke URL on stdout, then serves
 * until its stdin closes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [kind, dir] = process.argv.slice(2);
const work = mkdtempSync(join(tmpdir(), `caxton-bench-invoke-cpu-${kind}-`));
const SCRIPT = `[[rules]]\nname = "text"\ncontent = "ok: {{request}}"\n`;
const AGENT = `name = "text"\nversion = "1.0.0"\ndescription = "bench"\ncapabilities = ["benchmarking"]\nsystem_prompt = "Answer briefly."\n\n[execution]\nisolation = "context"\n`;

let url;
let close;
if (kind === 'caxton') {
  const dist = (p) => import(pathToFileURL(resolve(dir, 'dist', p)).href);
  const { loadServerConfig } = await dist('config/index.js');
  const { createLogger } = await dist('observability/index.js');
  const { startServer } = await dist('server/index.js');
  const file = join(work, 'caxton.toml');
  writeFileSync(join(work, 'script.toml'), SCRIPT);
  writeFileSync(
    file,
    `data_dir = "data"\nagents_dir = "agents"\n[server]\nhost = "127.0.0.1"\nport = 0\n[metrics]\nenabled = false\n[logging]\nlevel = "warn"\n` +
      `[llm]\ndefault_provider = "bench"\n[llm.providers.bench]\ntype = "scripted"\nscript = "script.toml"\n[messaging]\nmax_queue = 10000000\n` +
      `[events]\nenabled = true\n[audit]\nenabled = true\n`,
  );
  const config = loadServerConfig({ file, env: { CAXTON_AUTH__ENABLED: 'false' } });
  const server = await startServer({ config, logger: createLogger('warn') });
  const r = await fetch(`${server.url}/api/v1/agents`, {
    method: 'POST',
    headers: { 'content-type': 'application/toml' },
    body: AGENT,
  });
  if (r.status !== 201) throw new Error(`deploy → ${r.status}: ${await r.text()}`);
  url = `${server.url}/api/v1/agents/text/invoke`;
  close = () => server.close();
} else if (kind === 'floor') {
  const { startInvokeFloor } = await import('./invoke-floor.ts');
  const f = await startInvokeFloor(work);
  url = `${f.url}/api/v1/agents/text/invoke`;
  close = () => f.close();
} else {
  const { startHelloWorld } = await import('./baseline.ts');
  const hw = await startHelloWorld();
  url = `${hw.url}echo`;
  close = () => hw.close();
}
process.stdout.write(`${url}\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  await close();
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
});
