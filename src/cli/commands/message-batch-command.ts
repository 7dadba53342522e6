import { readFileSync } from 'node:fs';
import type { CliContext } from '../context.js';
import { CliError, usageError } from '../errors.js';

/** Messages per POST of `caxton message send --file` unless --batch-size says otherwise. */
export const DEFAULT_BATCH_SIZE = 100;

interface BatchItemJson {
  index: number;
  status: number;
  id?: string;
  conversation_id?: string;
  duplicate?: boolean;
  error?: { code: string; message: string; details: unknown };
}

interface BatchJson {
  results: BatchItemJson[];
  accepted: number;
  duplicates: number;
  refused: number;
}

/** One message of the file, with the line it came from. */
interface FileMessage {
  line: number;
  body: unknown;
}

/** The messages of a JSON Lines file (blank lines skipped); a line that is not JSON is a usage error naming it, before anything is sent. */
export function readMessageLines(file: string): FileMessage[] {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
  }
  const out: FileMessage[] = [];
  text.split('\n').forEach((raw, i) => {
    const t = raw.trim();
    if (t === '') return;
    try {
      out.push({ line: i + 1, body: JSON.parse(t) as unknown });
    } catch (e) {
      throw usageError(`${file} line ${i + 1} is not a JSON message: ${(e as Error).message}`);
    }
  });
  if (out.length === 0) throw usageError(`${file} holds no message (one JSON object per line)`);
  return out;
}

/**
 * Sends the messages of a JSON Lines file, `batchSize` per request. Each result names the line of
 * its message; a refused message does not stop the others. Exit 1 when any was refused.
 */
export async function sendMessageFile(ctx: CliContext, file: string, batchSize: number): Promise<void> {
  const out = ctx.output();
  const messages = readMessageLines(file);
  const all: (BatchItemJson & { line: number })[] = [];
  const totals = { accepted: 0, duplicates: 0, refused: 0 };
  for (let at = 0; at < messages.length; at += batchSize) {
    const chunk = messages.slice(at, at + batchSize);
    const { data } = await ctx.client().request<BatchJson>('POST', '/api/v1/messages', {
      body: JSON.stringify(chunk.map((m) => m.body)),
      contentType: 'application/json',
      timeoutMs: 120_000,
    });
    totals.accepted += data.accepted;
    totals.duplicates += data.duplicates;
    totals.refused += data.refused;
    for (const r of data.results) {
      const line = chunk[r.index]!.line;
      // The server numbers messages within one request; the file's line is what a user can find.
      const error = r.error && { ...r.error, message: r.error.message.replace(/^message \[\d+\]: /, '') };
      all.push({ ...r, index: at + r.index, line, ...(error && { error }) });
    }
  }
  process.exitCode = totals.refused > 0 ? 1 : 0;
  if (out.json) return out.data({ results: all, ...totals });
  for (const r of all) if (r.error) out.err(`line ${r.line}: ${r.error.code}: ${r.error.message}`);
  out.out(
    `sent ${totals.accepted} messages from ${file}${totals.duplicates > 0 ? `, ${totals.duplicates} already accepted (same ids)` : ''}${totals.refused > 0 ? `, ${totals.refused} refused` : ''}`,
  );
}
