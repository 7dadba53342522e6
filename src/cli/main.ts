#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/index.js';
import { CaxtonError } from '../shared/errors.js';
import { formatIssue } from '../shared/issues.js';
import { VERSION } from '../shared/version.js';
import { ApiClient, DEFAULT_SERVER_URL } from './client.js';
import { resolveCredentials } from './credentials.js';
import { describeServerSource } from './server-url.js';
import { registerKeyCommands } from './commands/key.js';
import { registerAgentCommands } from './commands/agent.js';
import { registerConversationCommands } from './commands/conversation.js';
import { registerDlqCommands } from './commands/dlq.js';
import { registerMessageCommands } from './commands/message.js';
import { registerMemoryCommands } from './commands/memory.js';
import type { CliContext } from './context.js';
import { registerInit } from './commands/init.js';
import { registerServe } from './commands/serve.js';
import { registerMcpCommand } from './commands/mcp.js';
import { registerSystemCommands } from './commands/system.js';
import { registerObservabilityCommands } from './commands/observe.js';
import { registerToolCommands } from './commands/tool.js';
import { registerAuditCommand } from './commands/audit.js';
import { CliError, EXIT } from './errors.js';
import { createOutput } from './output.js';

const program = new Command();
program
  .name('caxton')
  .description('Caxton: multi-agent orchestration server. Agents are configuration files; this CLI runs the server and talks to its REST API.')
  .version(VERSION, '-V, --version')
  .option('--server <url>', `Caxton server URL; HOST:PORT means http (default: $CAXTON_SERVER_URL, the profile's, [server] in ./caxton.toml, or ${DEFAULT_SERVER_URL})`)
  .option('--profile <name>', 'credentials profile from `caxton login` (default: $CAXTON_PROFILE or "default")')
  .option('--json', 'print machine-readable JSON instead of text')
  .showSuggestionAfterError(true)
  .configureOutput({ outputError: (s, write) => write(s) })
  .addHelpText(
    'after',
    `\nExit codes: 0 success, 1 failure, 2 usage error.\nExamples:\n  caxton serve --config examples/caxton.toml\n  caxton agent validate agents/*.toml\n  caxton agent deploy my-agent.toml\n  caxton agent list --capability data-analysis --json\n  caxton message send --capability question-answering --content "What is Caxton?" --wait\n  caxton conversation list --state failed\n  caxton tool call csv_parser.parse --args '{"text": "a,b\\n1,2"}'\n  caxton status --watch\n  caxton logs --level warn --follow\n  caxton events --type lifecycle --since 1h\n  caxton key create --name ci --role operator --expires 30d\n  caxton login --server https://caxton.example.com --profile prod`,
  );

const ctx: CliContext = {
  client: () => {
    const c = resolveCredentials({ server: program.opts().server as string | undefined, profile: program.opts().profile as string | undefined });
    return new ApiClient(c.server, { apiKey: c.apiKey, source: describeServerSource(c) });
  },
  credentials: () => resolveCredentials({ server: program.opts().server as string | undefined, profile: program.opts().profile as string | undefined }),
  output: () => createOutput(Boolean(program.opts().json)),
};

registerServe(program);
registerMcpCommand(program, ctx); // caxton mcp (stdio server), mcp servers, mcp login
registerAgentCommands(program, ctx);
registerMessageCommands(program, ctx);
registerConversationCommands(program, ctx);
registerDlqCommands(program, ctx);
registerToolCommands(program, ctx);
registerMemoryCommands(program, ctx); // caxton memory ... (src/memory)
registerSystemCommands(program, ctx);
registerObservabilityCommands(program, ctx);
registerAuditCommand(program, ctx); // caxton audit (src/audit)
registerInit(program, ctx);
registerKeyCommands(program, ctx); // caxton key ..., login, logout, whoami (src/auth)

// Usage errors (unknown command or option, missing argument) exit 2; --help and --version exit 0.
program.exitOverride();
for (const c of program.commands) {
  c.exitOverride();
  for (const sub of c.commands) sub.exitOverride();
}

function fail(e: unknown): never {
  const out = createOutput(Boolean(program.opts().json));
  if (e instanceof CommanderError) {
    process.exit(e.exitCode === 0 ? EXIT.ok : EXIT.usage);
  }
  let err: CliError;
  if (e instanceof CliError) err = e;
  else if (e instanceof ConfigError)
    err = new CliError('invalid configuration', { lines: e.issues.map(formatIssue), json: { error: { code: e.code, message: e.message, details: { issues: e.issues } } } });
  else if (e instanceof CaxtonError) err = new CliError(e.message, { json: { error: { code: e.code, message: e.message, details: e.details ?? null } } });
  else if ((e as NodeJS.ErrnoException)?.code === 'EADDRINUSE')
    err = new CliError(`address already in use: ${(e as Error).message.replace(/^listen EADDRINUSE: address already in use /, '')}`, {
      lines: ['another process holds this port; pick another with --port (or --metrics-port)'],
    });
  else err = new CliError(`unexpected error: ${e instanceof Error ? e.message : String(e)}`);
  if (out.json && err.exitCode !== EXIT.usage) out.data(err.json ?? { error: { code: 'failure', message: err.message, details: null } });
  else {
    out.err(`error: ${err.message}`);
    for (const l of err.lines) out.err(`  ${l.replace(/\n/g, '\n  ')}`);
  }
  process.exit(err.exitCode);
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  fail(e);
}
