/**
 * A Caxton server of the build in DIR/dist for the invoke probes: [audit], [events] and execution
 * records on, the audit-events suite's context-mode agent and scripted stand-in, not listening,
 * driven through `app.inject` with 10 invokes in flight.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const AGENT = `name = "text"\nversion = "1.0.0"\ndescription = "bench"\ncapabilities = ["benchmarking"]\nsystem_prompt = "Answer briefly."\n\n[execution]\nisolation = "context"\n`;

/** Starts the server in a temporary working directory; `run(n)` makes n invokes, `close()` removes it all. */
export async function startInjectServer(dir) {
  const work = mkdtempSync(join(tmpdir(), 'caxton-bench-invoke-'));
  const dist = (p) => import(pathToFileURL(resolve(dir, 'dist', p)).href);
  const { loadServerConfig } = await dist('config/index.js');
  const { createLogger } = await dist('observability/index.js');
  const { startServer } = await dist('server/index.js');
  const file = join(work, 'caxton.toml');
  writeFileSync(join(work, 'script.toml'), `[[rules]]\nname = "text"\ncontent = "ok: {{request}}"\n`);
  writeFileSync(
    file,
    `data_dir = "data"\nagents_dir = "agents"\n[server]\nhost = "127.0.0.1"\nport = 0\n[metrics]\nenabled = false\n[logging]\nlevel = "warn"\n` +
      `[llm]\ndefault_provider = "bench"\n[llm.providers.bench]\ntype = "scripted"\nscript = "script.toml"\n[events]\nenabled = true\n[audit]\nenabled = true\n`,
  );
  process.chdir(work);
  const config = loadServerConfig({ file, env: { CAXTON_AUTH__ENABLED: 'false' } });
  const server = await startServer({ config, logger: createLogger('warn'), listen: false });
  const app = server.app;
  const d = await app.inject({
    method: 'POST',
    url: '/api/v1/agents',
    headers: { 'content-type': 'application/toml' },
    payload: AGENT,
  });
  if (d.statusCode !== 201) throw new Error(d.body);
  const one = async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/api/v1/agents/text/invoke',
      headers: { 'content-type': 'application/json', host: '127.0.0.1' },
      payload: '{"request":"hello"}',
    });
    if (r.statusCode !== 200) throw new Error(r.body);
  };
  const run = async (n) => {
    let i = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (i++ < n) await one();
      }),
    );
  };
  const close = async () => {
    await server.close();
    rmSync(work, { recursive: true, force: true });
  };
  return { run, close };
}
