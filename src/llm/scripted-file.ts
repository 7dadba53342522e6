/**
 * Reading and checking a script of the `scripted` provider (format: scripted.ts,
 * docs/scripted-provider.md): the TOML parser and the schema. Only the server loads this module;
 * a worker thread or child process receives scripts already checked (see scripted.ts).
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { IN_MEMORY, ScriptedProvider, type CheckedScript } from './scripted.js';
import { LlmError, type ProviderConfig } from './types.js';

const toolCallSchema = z.strictObject({
  name: z.string().min(1),
  arguments: z.record(z.string(), z.unknown()).default({}),
  id: z.string().min(1).optional(),
});

const turnSchema = z
  .strictObject({ content: z.string().optional(), tool_calls: z.array(toolCallSchema).optional() })
  .refine((t) => t.content !== undefined || (t.tool_calls?.length ?? 0) > 0, {
    error: 'a turn needs content and/or tool_calls',
  });

const ruleSchema = z
  .strictObject({
    name: z.string().optional(),
    match: z.string().optional(),
    latency_ms: z.number().int().min(0).optional(),
    turns: z.array(turnSchema).min(1).optional(),
    content: z.string().optional(),
    tool_calls: z.array(toolCallSchema).optional(),
  })
  .refine((r) => (r.turns !== undefined) !== (r.content !== undefined || r.tool_calls !== undefined), {
    error: 'a rule needs either turns = [...] or content / tool_calls (not both)',
  });

export const scriptSchema = z
  .strictObject({
    latency_ms: z.number().int().min(0).optional(),
    chunk_ms: z.number().int().min(0).optional(),
    fallback: z.string().optional(),
    rules: z.array(ruleSchema).default([]),
  })
  .refine((s) => s.rules.length > 0 || s.fallback !== undefined, {
    error: 'a script needs at least one [[rules]] entry or a fallback',
  });

/** A script as written (the file's content, or an in-memory object of the same shape). */
export type Script = z.input<typeof scriptSchema>;

/** Reads, parses (.toml or .json) and checks a script file; errors go through `fail`. */
export async function readScriptFile(
  file: string,
  fail: (m: string, cause?: unknown) => LlmError,
): Promise<CheckedScript> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw fail(`cannot read it (${(e as NodeJS.ErrnoException).code ?? String(e)})`, e);
  }
  return checkScript(parseText(text, extname(file).toLowerCase(), fail), file, fail);
}

/** A provider for a script given in memory (checked here, as a file would be). */
export function createScriptedProvider(name: string, config: ProviderConfig, script: Script): ScriptedProvider {
  const model = config.model ?? 'scripted';
  const fail = (m: string): LlmError => new LlmError({ provider: name, model, kind: 'script', message: m });
  return new ScriptedProvider(name, config, checkScript(script, IN_MEMORY, fail));
}

function checkScript(raw: unknown, file: string, fail: (m: string) => LlmError): CheckedScript {
  const where = file === IN_MEMORY ? `${IN_MEMORY}: ` : '';
  const parsed = scriptSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 5).map((i) => `${formatPath(i.path) || '(top level)'}: ${i.message}`);
    throw fail(`${where}invalid script: ${issues.join('; ')}`);
  }
  return parsed.data;
}

function parseText(text: string, ext: string, fail: (m: string, cause?: unknown) => LlmError): unknown {
  if (ext === '.toml') {
    try {
      return parseToml(text);
    } catch (e) {
      if (e instanceof TomlError) {
        const first = (e.message.split('\n')[0] ?? e.message).replace(/^Invalid TOML document: /, '');
        throw fail(`TOML syntax error at line ${e.line}, column ${e.column}: ${first}`, e);
      }
      throw fail(`cannot parse TOML: ${String(e)}`, e);
    }
  }
  if (ext === '.json') {
    try {
      return JSON.parse(text) as unknown;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      const pos = /at position (\d+)/.exec(msg);
      if (pos && !/line \d+/.test(msg)) {
        const before = text.slice(0, Number(pos[1]));
        const line = before.split('\n').length;
        const column = before.length - before.lastIndexOf('\n');
        throw fail(`JSON syntax error at line ${line}, column ${column}: ${msg}`, e);
      }
      throw fail(`JSON syntax error: ${msg}`, e);
    }
  }
  throw fail(`unsupported extension "${ext || '(none)'}": use .toml or .json`);
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}
