/**
 * What a worker thread or child process receives of the LLM setup: each scripted provider's reply
 * file read and checked by the server, so the isolated side builds its provider without reading
 * the file (and without the TOML parser and schema library that reading needs).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDeps, setupShipper, type LlmSetup } from '../../src/execution/deps.js';
import { createProvider, type ProviderConfig } from '../../src/llm/index.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'caxton-shipped-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const scripted = (file: string): ProviderConfig => ({
  type: 'scripted',
  script: file,
  timeout_ms: 1_000,
  max_retries: 0,
  retry_base_ms: 1,
});
const setupFor = (file: string): LlmSetup => ({
  providers: { demo: scripted(file) },
  defaults: { provider: 'demo', modelAliases: {} },
});
const ask = (config: ProviderConfig, request: string) =>
  createProvider('demo', config).chat({ model: '', messages: [{ role: 'user', content: request }] });

describe('setupShipper', () => {
  it('ships the checked script, the same object while the file is unchanged, a new one once it changed', async () => {
    const file = path.join(dir, 'replies.toml');
    writeFileSync(file, '[[rules]]\ncontent = "first: {{request}}"\n');
    const setup = setupFor(file);
    const ship = setupShipper(setup, buildDeps(setup).providers);
    const a = await ship();
    expect(a.providers.demo!.script_checked).toMatchObject({ rules: [{ content: 'first: {{request}}' }] });
    expect(await ship()).toBe(a);
    // The shipped config builds a provider that answers without the file.
    const shipped = structuredClone(a.providers.demo!);
    rmSync(file);
    await expect(ask({ ...shipped, script: path.join(dir, 'gone.toml') }, 'hi')).resolves.toMatchObject({
      content: 'first: hi',
    });

    writeFileSync(file, '[[rules]]\ncontent = "second, longer: {{request}}"\n');
    const b = await ship();
    expect(b).not.toBe(a);
    await expect(ask(b.providers.demo!, 'hi')).resolves.toMatchObject({ content: 'second, longer: hi' });
  });

  it('ships why a script file cannot be used, and every call fails with it', async () => {
    const file = path.join(dir, 'broken.toml');
    writeFileSync(file, '[[rules]]\ncontent = "{{nope}}"\n');
    const setup = setupFor(file);
    const shipped = (await setupShipper(setup, buildDeps(setup).providers)()).providers.demo!;
    expect(shipped.script_checked).toBeUndefined();
    expect(shipped.script_error).toMatch(/script file ".*broken\.toml": .*unknown placeholder \{\{nope\}\}/);
    await expect(ask(shipped, 'hi')).rejects.toMatchObject({
      code: 'llm_error',
      message: expect.stringMatching(/unknown placeholder \{\{nope\}\}/),
    });
  });

  it('passes a setup without script files through as it is', async () => {
    const setup: LlmSetup = { providers: {}, defaults: { provider: '', modelAliases: {} } };
    expect(await setupShipper(setup, buildDeps(setup).providers)()).toBe(setup);
  });
});
