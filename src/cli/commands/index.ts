/**
 * The top-level commands and the module that registers each. The CLI imports only the module of
 * the command it runs (`caxton --version` imports none), so a command never pays for the others'
 * dependencies; `--help`, no command and an unknown one load them all, for the full list and
 * commander's suggestions. test/cli/lazy-commands.test.ts checks these names against what each
 * module registers.
 */
import type { Command } from 'commander';
import type { CliContext } from '../context.js';

export type RegisterCommands = (program: Command, ctx: CliContext) => void;

export interface CommandModule {
  /** The top-level commands (and aliases) the module registers. */
  readonly names: readonly string[];
  readonly load: () => Promise<RegisterCommands>;
}

/** In the order `caxton --help` lists them. */
export const COMMAND_MODULES: readonly CommandModule[] = [
  { names: ['serve'], load: async () => (await import('./serve-command.js')).registerServe },
  { names: ['mcp'], load: async () => (await import('./mcp-command.js')).registerMcpCommand },
  { names: ['agent'], load: async () => (await import('./agent-command.js')).registerAgentCommands },
  { names: ['message'], load: async () => (await import('./message-command.js')).registerMessageCommands },
  {
    names: ['conversation', 'conv'],
    load: async () => (await import('./conversation-command.js')).registerConversationCommands,
  },
  { names: ['dlq'], load: async () => (await import('./dlq-command.js')).registerDlqCommands },
  { names: ['tool'], load: async () => (await import('./tool-command.js')).registerToolCommands },
  { names: ['memory'], load: async () => (await import('./memory-command.js')).registerMemoryCommands },
  {
    names: ['health', 'status', 'config'],
    load: async () => (await import('./system-command.js')).registerSystemCommands,
  },
  { names: ['logs', 'events'], load: async () => (await import('./observe-command.js')).registerObservabilityCommands },
  {
    names: ['execution', 'exec'],
    load: async () => (await import('./execution-command.js')).registerExecutionCommands,
  },
  { names: ['run'], load: async () => (await import('./runs-command.js')).registerRunCommands },
  { names: ['audit'], load: async () => (await import('./audit-command.js')).registerAuditCommand },
  { names: ['init'], load: async () => (await import('./init-command.js')).registerInit },
  {
    names: ['key', 'login', 'logout', 'whoami'],
    load: async () => (await import('./key-command.js')).registerKeyCommands,
  },
];

/** Global options that take a value (`--server URL`), so the value is not read as the command. */
const VALUE_OPTIONS = new Set(['--server', '--profile']);
const VERSION_FLAGS = new Set(['-V', '--version']);

/**
 * The modules to load for `argv` (the arguments after `caxton`): the one registering the command
 * named, none for a bare `--version`, all otherwise (help, no command, an unknown command or
 * option).
 */
export function modulesFor(
  argv: readonly string[],
  modules: readonly CommandModule[] = COMMAND_MODULES,
): readonly CommandModule[] {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json' || VALUE_OPTIONS.has(a.split('=')[0]!)) {
      if (VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    if (VERSION_FLAGS.has(a)) return argv.some((x) => x === '-h' || x === '--help') ? modules : [];
    if (a.startsWith('-')) return modules;
    const named = modules.find((m) => m.names.includes(a));
    return named ? [named] : modules;
  }
  return modules;
}
