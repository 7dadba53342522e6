/**
 * The CLI imports only the command it runs (src/cli/commands/index.ts): the table's names are
 * what each module registers, argv picks the right module, and `caxton --version` run for real
 * imports a handful of the bundle's files and nothing else.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMAND_MODULES, modulesFor } from '../../src/cli/commands/index.js';
import type { CliContext } from '../../src/cli/context.js';
import { assertBuilt, cleanup, CLI, PACKAGE_VERSION, tempDir } from './helpers/cli.js';

afterAll(cleanup);

const unused = (): never => {
  throw new Error('not called while registering');
};
const ctx: CliContext = { client: unused, credentials: unused, output: unused };

function named(...names: string[]) {
  return names.map((n) => COMMAND_MODULES.find((m) => m.names.includes(n)));
}

describe('lazy CLI commands', () => {
  it('each module registers exactly the top-level commands (and aliases) the table names', async () => {
    for (const m of COMMAND_MODULES) {
      const program = new Command();
      (await m.load())(program, ctx);
      expect(program.commands.flatMap((c) => [c.name(), ...c.aliases()])).toEqual(m.names);
    }
    const all = COMMAND_MODULES.flatMap((m) => m.names);
    expect(new Set(all).size).toBe(all.length);
  });

  it('picks the module of the command named, none for --version, all for help, nothing or an unknown word', () => {
    expect(modulesFor(['serve', '--port', '0'])).toEqual(named('serve'));
    expect(modulesFor(['--server', 'http://x', '--json', 'conv', 'list'])).toEqual(named('conv'));
    expect(modulesFor(['--profile=prod', 'whoami'])).toEqual(named('key'));
    expect(modulesFor(['status', '--watch'])).toEqual(named('health'));
    expect(modulesFor(['--version'])).toEqual([]);
    expect(modulesFor(['-V'])).toEqual([]);
    expect(modulesFor(['--help'])).toEqual(COMMAND_MODULES);
    expect(modulesFor(['-V', '--help'])).toEqual(COMMAND_MODULES);
    expect(modulesFor([])).toEqual(COMMAND_MODULES);
    expect(modulesFor(['agnt'])).toEqual(COMMAND_MODULES);
    expect(modulesFor(['--frobnicate', 'agent'])).toEqual(COMMAND_MODULES);
  });

  it("`caxton --version` imports a handful of the bundle's files, nothing else", () => {
    assertBuilt();
    const dir = tempDir();
    const list = join(dir, 'modules.txt');
    writeFileSync(
      join(dir, 'hooks.mjs'),
      `import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { appendFileSync(${JSON.stringify(list)}, url + '\\n'); return next(url, context); }\n`,
    );
    writeFileSync(
      join(dir, 'count.mjs'),
      `import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n`,
    );
    writeFileSync(list, '');
    const r = spawnSync(process.execPath, ['--import', join(dir, 'count.mjs'), CLI, '--version'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(PACKAGE_VERSION);
    const files = readFileSync(list, 'utf8')
      .split('\n')
      .filter((u) => u.startsWith('file:'));
    const packages = new Set(files.flatMap((u) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1] ?? []));
    // commander is bundled into dist/cli (scripts/build-bundle.mjs): no package is read from node_modules.
    expect([...packages]).toEqual([]);
    expect(files.filter((u) => u.includes('/dist/')).length).toBeLessThan(10);
  });
});
