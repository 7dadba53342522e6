/**
 * A completed A2A task carries the files its run wrote in the granted workspace (docs/a2a.md,
 * ADR 0140), driven by the real @a2a-js/sdk client against a real server: the scripted model calls
 * workspace.write, then GetTask (and the stream's end) shows each file as a file part named by its
 * path below the workspace, text scrubbed of the configured secrets, a binary file as bytes, a file
 * over the bound listed by name, and a file swapped for a link leading out refused, never read;
 * and the files a workspace.bash command writes (in the real bubblewrap sandbox), found by the
 * workspace's state before and after it.
 */
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SendMessageRequest, TaskState, type Message, type Part, type StreamResponse, type Task } from '@a2a-js/sdk';
import { stringify } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ARTIFACT_FILE_BYTES } from '../../src/a2a/files.js';
import { adminKeyOf } from '../helpers/keys.js';
import { hasSystem } from '../helpers/system.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { clientFor } from './helpers/client.js';
import { OPENAI_KEY, openaiProvider, setTestKeys } from '../execution/helpers/caxton.js';
import { startLlmStub, type LlmStub, type StubHit } from '../execution/helpers/llm-stub.js';

let stub: LlmStub;
let srv: TestServer;
let admin: string;
let ws: string;
let outside: string;

type Msg = { role: string; content: string | null };
const messagesOf = (hit: StubHit): Msg[] => hit.body.messages as Msg[];
const wire = (hit: StubHit, name: string): string =>
  (hit.body.tools as { function: { name: string } }[]).map((t) => t.function.name).find((n) => n.includes(name))!;

/** The writes the model makes, by the word the request starts with. */
const WRITES: Record<string, { file_path: string; content: string }[]> = {
  report: [
    { file_path: 'out/report.md', content: `# Report\nkey: ${OPENAI_KEY}\n` },
    { file_path: 'data.bin', content: 'A\u0000B' },
    { file_path: 'big.txt', content: 'x'.repeat(MAX_ARTIFACT_FILE_BYTES + 1) },
    { file_path: '../escape.txt', content: 'never written' },
  ],
  notes: [{ file_path: 'notes.txt', content: 'my notes' }],
};

/** The command the model runs for a request starting "shell": it writes one file and rewrites another. */
const SHELL_COMMAND = "mkdir -p made && printf 'made by bash' > made/by-bash.txt && printf 'rewritten' > notes.txt";

beforeAll(async () => {
  setTestKeys();
  stub = await startLlmStub((hit) => {
    const msgs = messagesOf(hit);
    const request = msgs.filter((m) => m.role === 'user').at(-1)!.content!;
    if (msgs.some((m) => m.role === 'tool')) return { content: 'done' };
    if (request.startsWith('shell'))
      return { tool_calls: [{ id: 'b-0', name: wire(hit, 'bash'), arguments: { command: SHELL_COMMAND } }] };
    const writes = WRITES[request.split(' ')[0]!] ?? [];
    return {
      tool_calls: writes.map((w, i) => ({ id: `w-${i}`, name: wire(hit, 'write'), arguments: w })),
    };
  });
  const dir = makeTempDir('caxton-a2a-files-');
  ws = join(dir, 'ws');
  mkdirSync(ws);
  outside = join(dir, 'outside.txt');
  writeFileSync(outside, 'OUTSIDE THE WORKSPACE');
  srv = await startTestServer({
    dir,
    toml: stringify({
      auth: { enabled: true },
      a2a: { expose: ['scribe'] },
      workspace: { path: ws, write: true, bash: { enabled: true, commands: ['mkdir', 'printf'] } },
      llm: { default_provider: 'stub', providers: { stub: openaiProvider(stub.url, { max_retries: 0 }) } },
    }),
    agentFiles: {
      'scribe.toml': stringify({
        name: 'scribe',
        system_prompt: 'SCRIBE',
        tools: ['workspace.write', 'workspace.bash'],
      }),
    },
  });
  admin = adminKeyOf(srv.dataDir);
}, 60_000);

afterAll(async () => {
  await srv?.close();
  await stub?.close();
  removeTempDirs();
});

let n = 0;
const send = (text: string) =>
  SendMessageRequest.fromJSON({ message: { messageId: `f-${++n}`, role: 'ROLE_USER', parts: [{ text }] } });
const asTask = (r: Message | Task): Task => {
  if (!('status' in r)) throw new Error(`expected a task, got a message: ${JSON.stringify(r)}`);
  return r;
};
const filesOf = (t: Task): Part[] => t.artifacts.find((a) => a.artifactId === 'files')?.parts ?? [];
const raw = (p: Part | undefined): string =>
  p?.content?.$case === 'raw' ? p.content.value.toString('utf8') : `not a file part: ${JSON.stringify(p)}`;
const notCarried = (parts: Part[]): { file: string; reason: string; size?: number }[] => {
  const d = parts.find((p) => p.content?.$case === 'data');
  return d?.content?.$case === 'data' ? (d.content.value as { files_not_carried: [] }).files_not_carried : [];
};

describe('A2A tasks carry the files the agent wrote', () => {
  it('GetTask shows each written file as a file part, scrubbed and bounded', async () => {
    const client = await clientFor(srv.url, admin, 'scribe');
    const sent = asTask(await client.sendMessage(send('report please')));
    expect(sent.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    const task = await client.getTask({ id: sent.id, historyLength: 0, tenant: '' });
    expect(task.artifacts.map((a) => a.artifactId)).toEqual(['answer', 'files']);
    const parts = filesOf(task);
    const byName = new Map(parts.filter((p) => p.filename !== '').map((p) => [p.filename, p]));
    expect([...byName.keys()]).toEqual(['out/report.md', 'data.bin']);
    // The secret in the file is scrubbed before it is encoded, as in the answer.
    expect(raw(byName.get('out/report.md'))).toBe('# Report\nkey: ***\n');
    expect(byName.get('out/report.md')!.mediaType).toBe('text/markdown');
    expect(raw(byName.get('data.bin'))).toBe('A\u0000B');
    expect(byName.get('data.bin')!.mediaType).toBe('application/octet-stream');
    // Over the bound: named with its size, not inlined; the refused write outside is not there at all.
    expect(notCarried(parts)).toEqual([
      expect.objectContaining({ file: 'big.txt', size: MAX_ARTIFACT_FILE_BYTES + 1 }),
    ]);
    expect(sent.artifacts.map((a) => a.artifactId)).toEqual(['answer', 'files']);
  });

  it('streams the files artifact before the final status', async () => {
    const client = await clientFor(srv.url, admin, 'scribe');
    const events: StreamResponse[] = [];
    for await (const e of client.sendMessageStream(send('notes now'))) events.push(e);
    const artifacts = events.flatMap((e) => (e.payload?.$case === 'artifactUpdate' ? [e.payload.value.artifact!] : []));
    expect(artifacts.map((a) => a.artifactId)).toEqual(['answer', 'files']);
    expect(artifacts[1]!.parts.map((p) => [p.filename, raw(p)])).toEqual([['notes.txt', 'my notes']]);
    const last = events.at(-1)!;
    expect(last.payload?.$case === 'statusUpdate' && last.payload.value.status?.state).toBe(
      TaskState.TASK_STATE_COMPLETED,
    );
  });

  it('a written file swapped for a link leading out is refused, never read', async () => {
    const client = await clientFor(srv.url, admin, 'scribe');
    const sent = asTask(await client.sendMessage(send('notes again')));
    rmSync(join(ws, 'notes.txt'));
    symlinkSync(outside, join(ws, 'notes.txt'));
    const task = await client.getTask({ id: sent.id, historyLength: 0, tenant: '' });
    const parts = filesOf(task);
    expect(JSON.stringify(task)).not.toContain('OUTSIDE');
    expect(parts.filter((p) => p.content?.$case === 'raw')).toEqual([]);
    expect(notCarried(parts)).toEqual([
      expect.objectContaining({ file: 'notes.txt', reason: expect.stringContaining('symbolic link') }),
    ]);
  });
});

describe.skipIf(!hasSystem('bwrap'))('A2A tasks carry the files a Bash command wrote', () => {
  it('GetTask shows the files the command created or changed, not those it left alone', async () => {
    writeFileSync(join(ws, 'untouched.txt'), 'left alone');
    rmSync(join(ws, 'notes.txt'), { force: true });
    writeFileSync(join(ws, 'notes.txt'), 'before');
    const client = await clientFor(srv.url, admin, 'scribe');
    const sent = asTask(await client.sendMessage(send('shell work')));
    expect(sent.status?.state).toBe(TaskState.TASK_STATE_COMPLETED);
    const task = await client.getTask({ id: sent.id, historyLength: 0, tenant: '' });
    const parts = filesOf(task);
    expect(parts.map((p) => [p.filename, raw(p)])).toEqual([
      ['notes.txt', 'rewritten'],
      ['made/by-bash.txt', 'made by bash'],
    ]);
    expect(parts.find((p) => p.filename === 'made/by-bash.txt')!.mediaType).toBe('text/plain');
  });

  it('a file the command wrote, swapped for a link leading out, is refused, never read', async () => {
    const client = await clientFor(srv.url, admin, 'scribe');
    const sent = asTask(await client.sendMessage(send('shell again')));
    rmSync(join(ws, 'made', 'by-bash.txt'));
    symlinkSync(outside, join(ws, 'made', 'by-bash.txt'));
    const task = await client.getTask({ id: sent.id, historyLength: 0, tenant: '' });
    expect(JSON.stringify(task)).not.toContain('OUTSIDE');
    expect(notCarried(filesOf(task))).toEqual([
      expect.objectContaining({ file: 'made/by-bash.txt', reason: expect.stringContaining('symbolic link') }),
    ]);
  });
});
