/**
 * The CLI itself: commander's program with the command named in `argv` registered, parsed and run.
 * Called by the entry (main.ts) in the ES module bundle, or from the CommonJS serve bundle that
 * the entry runs through V8's code cache (code-cache.ts).
 */
import { Command, CommanderError } from 'commander';
import { VERSION } from '../shared/version.js';
import { DEFAULT_SERVER_URL } from './api-client.js';
import { modulesFor } from './commands/index.js';
import type { CodeCacheHook } from './code-cache.js';
import type { CliContext } from './context.js';
import { CliError, EXIT } from './errors.js';
import { createOutput } from './output.js';

/** Runs the CLI on `argv` (as `process.argv`); `codeCache` when the serve bundle runs from the code cache. */
export async function runCli(argv: readonly string[], codeCache?: CodeCacheHook): Promise<void> {
  const program = new Command();
  program
    .name('caxton')
    .description(
      'Caxton: multi-agent orchestration server. Agents are configuration files; this CLI runs the server and talks to its REST API.',
    )
    .version(VERSION, '-V, --version')
    .option(
      '--server <url>',
      `Caxton server URL; HOST:PORT means http (default: $CAXTON_SERVER_URL, the profile's, [server] in ./caxton.toml, or ${DEFAULT_SERVER_URL})`,
    )
    .option('--profile <name>', 'credentials profile from `caxton login` (default: $CAXTON_PROFILE or "default")')
    .option('--json', 'print machine-readable JSON instead of text')
    .showSuggestionAfterError(true)
    .configureOutput({ outputError: (s, write) => write(s) })
    .addHelpText(
      'after',
      `\nExit codes: 0 success, 1 failure, 2 usage error.\nExamples:\n  caxton serve --config examples/caxton.toml\n  caxton agent validate agents/*.toml\n  caxton agent deploy my-agent.toml\n  caxton agent list --capability data-analysis --json\n  caxton message send --capability question-answering --content "What is Caxton?" --wait\n  caxton run start assistant "What is 6 times 7?" --wait\n  caxton run list --waiting\n  caxton conversation list --state failed\n  caxton tool call csv_parser.parse --args '{"text": "a,b\\n1,2"}'\n  caxton status --watch\n  caxton logs --level warn --follow\n  caxton events --type lifecycle --since 1h\n  caxton key create --name ci --role operator --expires 30d\n  caxton login --server https://caxton.example.com --profile prod`,
    );

  // Only the command that runs is imported (src/cli/commands/index.ts): `caxton --version` loads
  // next to nothing, `caxton serve` none of the client commands.
  const registers = await Promise.all(modulesFor(argv.slice(2)).map((m) => m.load()));
  if (registers.length > 0) {
    const [{ ApiClient }, { resolveCredentials }, { describeServerSource }] = await Promise.all([
      import('./api-client.js'),
      import('./credentials.js'),
      import('./server-url.js'),
    ]);
    const ctx: CliContext = {
      client: () => {
        const c = resolveCredentials({
          server: program.opts().server as string | undefined,
          profile: program.opts().profile as string | undefined,
        });
        return new ApiClient(c.server, { apiKey: c.apiKey, source: describeServerSource(c) });
      },
      credentials: () =>
        resolveCredentials({
          server: program.opts().server as string | undefined,
          profile: program.opts().profile as string | undefined,
        }),
      output: () => createOutput(Boolean(program.opts().json)),
      ...(codeCache && { codeCache }),
    };
    for (const register of registers) register(program, ctx);
  }

  // Usage errors (unknown command or option, missing argument) exit 2; --help and --version exit 0.
  program.exitOverride();
  for (const c of program.commands) {
    c.exitOverride();
    for (const sub of c.commands) sub.exitOverride();
  }

  async function fail(e: unknown): Promise<never> {
    if (e instanceof CommanderError) {
      process.exit(e.exitCode === 0 ? EXIT.ok : EXIT.usage);
    }
    // Loaded on failure only: the configuration's schema is not needed to print the version.
    const [{ ConfigError }, { CaxtonError }, { formatIssue }] = await Promise.all([
      import('../config/index.js'),
      import('../shared/errors.js'),
      import('../shared/issues.js'),
    ]);
    const out = createOutput(Boolean(program.opts().json));
    let err: CliError;
    if (e instanceof CliError) err = e;
    else if (e instanceof ConfigError)
      err = new CliError('invalid configuration', {
        lines: e.issues.map(formatIssue),
        json: { error: { code: e.code, message: e.message, details: { issues: e.issues } } },
      });
    else if (e instanceof CaxtonError)
      err = new CliError(e.message, {
        json: { error: { code: e.code, message: e.message, details: e.details ?? null } },
      });
    else if ((e as NodeJS.ErrnoException)?.code === 'EADDRINUSE')
      err = new CliError(
        `address already in use: ${(e as Error).message.replace(/^listen EADDRINUSE: address already in use /, '')}`,
        {
          lines: ['another process holds this port; pick another with --port (or --metrics-port)'],
        },
      );
    else err = new CliError(`unexpected error: ${e instanceof Error ? e.message : String(e)}`);
    if (out.json && err.exitCode !== EXIT.usage)
      out.data(err.json ?? { error: { code: 'failure', message: err.message, details: null } });
    else {
      out.err(`error: ${err.message}`);
      for (const l of err.lines) out.err(`  ${l.replace(/\n/g, '\n  ')}`);
    }
    process.exit(err.exitCode);
  }

  try {
    await program.parseAsync([...argv]);
  } catch (e) {
    await fail(e);
  }
  // A command whose action has returned is done (`serve` and `mcp` never return: they exit on a
  // signal or when stdin closes). Exiting here, once what was printed is flushed, keeps a stray
  // handle (an idle keep-alive socket the HTTP client failed to unref) from holding the shell.
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit();
}

/** Resolves once everything written to the stream so far has been handed to the OS. */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((res) => {
    if (stream.destroyed || !stream.writable) res();
    else stream.write('', () => res());
  });
}
