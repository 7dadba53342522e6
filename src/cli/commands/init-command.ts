import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CliError, usageError } from '../errors.js';
import type { CliContext } from '../context.js';

/** templates/ and sdk/ sit at the package root; src/cli/commands and dist/cli/commands are both three levels down. */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const TEMPLATES_DIR = join(PACKAGE_ROOT, 'templates');
const SDK_DIR = join(PACKAGE_ROOT, 'sdk');

/**
 * The SDK a tool template builds against, copied into the new package from sdk/ (one copy in the
 * repository, so the header and the crate cannot drift from the templates): [from under sdk/, to].
 */
const TEMPLATE_SDKS: Readonly<Record<string, readonly (readonly [string, string])[]>> = {
  'tool-c': [['c/caxton.h', 'include/caxton.h']],
  'tool-rust': [['rust/caxton', 'caxton']],
};

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    // Build output and installed packages are not part of a template.
    if (f === 'build' || f === 'node_modules') return [];
    const p = join(dir, f);
    return statSync(p).isDirectory() ? listFiles(p) : [p];
  });
}

export function templateNames(): string[] {
  return existsSync(TEMPLATES_DIR)
    ? readdirSync(TEMPLATES_DIR)
        .filter((f) => statSync(join(TEMPLATES_DIR, f)).isDirectory())
        .sort()
    : [];
}

export function registerInit(program: Command, ctx: CliContext): void {
  program
    .command('init')
    .description('scaffold a new Caxton project: caxton.toml plus example agents')
    .argument('<dir>', 'directory to create (may exist, but files are never overwritten without --force)')
    .option('-t, --template <name>', `template to use (${templateNames().join(', ') || 'basic'})`, 'basic')
    .option('--force', 'overwrite files that already exist')
    .action((dir: string, opts: { template: string; force?: boolean }) => {
      const out = ctx.output();
      const names = templateNames();
      if (!names.includes(opts.template))
        throw usageError(`unknown template "${opts.template}"; available: ${names.join(', ')}`);
      const src = join(TEMPLATES_DIR, opts.template);
      const dest = resolve(dir);
      const copies: [string, string][] = listFiles(src).map((f) => [f, relative(src, f)]);
      for (const [from, to] of TEMPLATE_SDKS[opts.template] ?? []) {
        const sdk = join(SDK_DIR, from);
        if (statSync(sdk).isDirectory()) for (const f of listFiles(sdk)) copies.push([f, join(to, relative(sdk, f))]);
        else copies.push([sdk, to]);
      }
      const files = copies.map(([, to]) => to);
      const clashes = files.filter((f) => existsSync(join(dest, f)));
      if (clashes.length > 0 && !opts.force) {
        throw new CliError(`refusing to overwrite existing files in ${dest}: ${clashes.join(', ')}`, {
          lines: ['pass --force to overwrite them'],
        });
      }
      for (const [from, to] of copies) {
        mkdirSync(dirname(join(dest, to)), { recursive: true });
        copyFileSync(from, join(dest, to));
      }
      const toolPackage = files.includes(MANIFEST);
      if (!toolPackage) mkdirSync(join(dest, 'agents'), { recursive: true });
      if (out.json) return out.data({ dir: dest, template: opts.template, files });
      out.out(`created ${dest} from template "${opts.template}":`);
      for (const f of files) out.out(`  ${f}`);
      out.out(`\nnext:\n${nextSteps(dir, files).join('\n')}`);
    });
}

const MANIFEST = 'caxton-tool.toml';

/** The commands to run next, naming only paths the template created (a tool package has no agents/ or caxton.toml). */
function nextSteps(dir: string, files: string[]): string[] {
  if (files.includes(MANIFEST)) {
    const name = /^name\s*=\s*"([^"]+)"/m.exec(readFileSync(join(resolve(dir), MANIFEST), 'utf8'))?.[1] ?? 'NAME';
    // The build runs in a subshell: the next lines are run from here, where `dir` is.
    const build = files.includes('Makefile')
      ? `  (cd ${dir} && make)   # compiles the module to build/*.wasm (toolchain: see README.md)`
      : `  (cd ${dir} && npm install && npm run build)   # compiles assembly/index.ts to build/*.wasm`;
    return [
      build,
      `  caxton tool deploy ${dir}   # to the running server (caxton serve; --server URL for another)`,
      `  caxton tool show ${name}`,
    ];
  }
  return [`  caxton agent validate ${join(dir, 'agents')}/*`, `  caxton serve --config ${join(dir, 'caxton.toml')}`];
}
