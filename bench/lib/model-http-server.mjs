/**
 * One server of the model-http suite, alone in its process: this checkout's build (dist/) with
 * the agent on the scripted model (`scripted`) or on an OpenAI-compatible model at BASE_URL
 * (`openai BASE_URL`), metrics and logs quiet, everything else at its defaults. Prints its
 * invoke URL on stdout, then serves until its stdin closes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [kind, baseUrl] = process.argv.slice(2);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const dist = (p) => import(pathToFileURL(join(root, 'dist', p)).href);
const work = mkdtempSync(join(tmpdir(), `caxton-bench-model-http-${kind}-`));
const AGENT = `name = "text"\nversion = "1.0.0"\ndescription = "bench"\ncapabilities = ["benchmarking"]\nsystem_prompt = "Answer briefly."\n\n[execution]\nisolation = "context"\n`;
const provider =
  kind === 'openai'
    ? `type = "openai"\nbase_url = "${baseUrl}"\nmodel = "stub"\nmax_retries = 0\n`
    : `type = "scripted"\nscript = "script.toml"\n`;
writeFileSync(join(work, 'script.toml'), `[[rules]]\nname = "text"\ncontent = "ok: {{request}}"\n`);
const file = join(work, 'caxton.toml');
writeFileSync(
  file,
  `data_dir = "data"\nagents_dir = "agents"\n[server]\nhost = "127.0.0.1"\nport = 0\n[metrics]\nenabled = false\n[logging]\nlevel = "warn"\n` +
    `[llm]\ndefault_provider = "bench"\n[llm.providers.bench]\n${provider}`,
);
const { loadServerConfig } = await dist('config/index.js');
const { createLogger } = await dist('observability/index.js');
const { startServer } = await dist('server/index.js');
const config = loadServerConfig({ file, env: { CAXTON_AUTH__ENABLED: 'false' } });
const server = await startServer({ config, logger: createLogger('warn') });
const r = await fetch(`${server.url}/api/v1/agents`, {
  method: 'POST',
  headers: { 'content-type': 'application/toml' },
  body: AGENT,
});
if (r.status !== 201) throw new Error(`deploy → ${r.status}: ${await r.text()}`);
process.stdout.write(`${server.url}/api/v1/agents/text/invoke\n`);
process.stdin.resume();
process.stdin.on('end', async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
});
