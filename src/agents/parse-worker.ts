/**
 * The agent parser on a worker thread (parse-pool.ts): large agent bodies are parsed here so the
 * server's event loop keeps answering. Same function, same result; a thrown error goes back as
 * its message and is thrown again on the calling side.
 */
import { parentPort, threadId } from 'node:worker_threads';
import { parseAgent, type ParseOptions } from './parse.js';

export interface ParseRequest {
  id: number;
  input: string | Uint8Array;
  opts: ParseOptions;
}

export type ParseReply = { id: number; thread: number } & (
  { result: ReturnType<typeof parseAgent> } | { error: { name: string; message: string } }
);

parentPort?.on('message', (m: ParseRequest) => {
  let reply: ParseReply;
  try {
    reply = { id: m.id, thread: threadId, result: parseAgent(m.input, m.opts) };
  } catch (e) {
    reply = {
      id: m.id,
      thread: threadId,
      error: { name: e instanceof Error ? e.name : 'Error', message: e instanceof Error ? e.message : String(e) },
    };
  }
  parentPort!.postMessage(reply);
});
