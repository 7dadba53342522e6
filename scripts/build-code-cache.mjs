#!/usr/bin/env node
/**
 * Ships V8's code cache of the serve bundle: dist/cli/serve.bin, which a project's first
 * `caxton serve` starts from until it has written a cache of its own (src/cli/code-cache.ts).
 * `npm run build:code-cache`, the last step of `npm run build`.
 *
 * The cache is the one a start writes after its first answer, so it is made the same way: a start
 * of a sample project (one agent, the scripted model, no authentication) in a temporary directory,
 * asked once, then stopped. It is keyed to this bundle, this Node and no flags: a start under
 * another Node or with NODE_OPTIONS finds it does not fit and compiles as it would without it.
 * Failing to make it fails nothing: the build goes on and starts compile without it.
 *
 * Beside it goes its record, dist/cli/serve.id (src/cli/code-cache-check.ts): the bundle's SHA-256
 * and both files' identity, so a first start of this build does not hash them again.
 */
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist/cli/main.js');
const out = join(root, 'dist/cli/serve.bin');
const TIMEOUT_MS = 60_000;

const PROJECT = {
  'caxton.toml':
    'data_dir = "data"\nagents_dir = "agents"\n[server]\nhost = "127.0.0.1"\nport = 0\n[auth]\nenabled = false\n' +
    '[metrics]\nenabled = false\n[logging]\nlevel = "warn"\n[llm]\ndefault_provider = "sample"\n' +
    '[llm.providers.sample]\ntype = "scripted"\nscript = "replies.toml"\n',
  'replies.toml': 'fallback = "hello"\n',
  'agents/echo.toml': 'name = "echo"\ndescription = "answers hello"\nsystem_prompt = "Answer."\n',
};

async function train(dir) {
  for (const [file, text] of Object.entries(PROJECT)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
  }
  const env = { ...process.env, CAXTON_CODE_CACHE_LOG: '1', CAXTON_CODE_CACHE: 'project' };
  for (const k of ['NODE_OPTIONS', 'CAXTON_CONFIG', 'CAXTON_DATA_DIR', 'CAXTON_PORT', 'CAXTON_HOST']) delete env[k];
  const child = spawn(process.execPath, [cli, 'serve'], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  try {
    const url = await new Promise((res, rej) => {
      child.stderr.on('data', (d) => {
        err += d;
        const m = /listening on (http:\/\/\S+?)[\s;,]/.exec(err);
        if (m) res(m[1]);
      });
      child.once('exit', (code) => rej(new Error(`the sample server exited (${code}) before listening`)));
    });
    const r = await fetch(`${url}/api/v1/agents/echo/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"request":"hi"}',
    });
    await r.text();
    if (r.status !== 200) throw new Error(`the sample agent answered ${r.status}`);
    await new Promise((res, rej) => {
      const check = () => {
        if (/caxton code cache: wrote /.test(err)) res();
        else if (/caxton code cache: (not used|not written)/.test(err)) rej(new Error(err.trim()));
        else setTimeout(check, 50);
      };
      check();
    });
  } finally {
    clearTimeout(timer);
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((res) => child.once('exit', res));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'caxton-code-cache-build-'));
try {
  rmSync(out, { force: true });
  rmSync(join(dirname(out), 'serve.id'), { force: true });
  await train(dir);
  const made = join(dir, 'data/code-cache/serve.bin');
  if (!existsSync(made)) throw new Error('the sample start wrote no cache');
  copyFileSync(made, out);
  chmodSync(out, 0o644);
  // Its record (src/cli/code-cache-check.ts): starts of this build find the bundle and the cache
  // unchanged since this check and do not hash them again.
  const { recordShippedCache } = await import(pathToFileURL(join(root, 'dist/cli/code-cache.js')).href);
  recordShippedCache(out);
  console.log(`wrote ${out} and its record`);
} catch (e) {
  console.warn(
    `build:code-cache: no shipped code cache (${e instanceof Error ? e.message : String(e)}); starts compile without it`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
