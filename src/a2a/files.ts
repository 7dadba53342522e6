/**
 * The files a completed run wrote in the workspace, as an A2A artifact of file parts. The run's
 * own steps say which paths workspace.write, .edit and .multi_edit changed (a call that answered
 * without error) and which files a workspace.bash command left; each is read back through the grant (readWorkspaceFile: the same confinement,
 * no-follow walk and read deny rules as workspace.read), bounded in count and bytes. A text file
 * is scrubbed of the configured secrets before it is encoded, as the answer is at the exit
 * (ADR 0017); a binary file whose base64 would carry one is withheld. Files are read when the task
 * is shown, so a part holds the file as the workspace has it then.
 */
import type { Artifact, Part } from '@a2a-js/sdk';
import type { RunRecord, RunStep } from '../execution/index.js';
import { scrubSecrets } from '../shared/secrets.js';
import { readWorkspaceFile, type Workspace } from '../tools/workspace/index.js';
import { dataPart } from './tasks.js';

/** The tools whose successful calls leave a file written at their `file_path`. */
const WRITE_TOOLS: ReadonlySet<string> = new Set(['workspace.write', 'workspace.edit', 'workspace.multi_edit']);
/** Most files one task carries; the others are listed by name. */
export const MAX_ARTIFACT_FILES = 20;
/** Most bytes of one file carried; a larger one is listed by name and size. */
export const MAX_ARTIFACT_FILE_BYTES = 1024 * 1024;

const MEDIA_TYPES: Readonly<Record<string, string>> = {
  txt: 'text/plain',
  md: 'text/markdown',
  csv: 'text/csv',
  html: 'text/html',
  css: 'text/css',
  js: 'text/javascript',
  mjs: 'text/javascript',
  ts: 'text/x-typescript',
  py: 'text/x-python',
  json: 'application/json',
  xml: 'application/xml',
  yaml: 'application/yaml',
  yml: 'application/yaml',
  toml: 'application/toml',
  svg: 'image/svg+xml',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  pdf: 'application/pdf',
  zip: 'application/zip',
};

/**
 * The paths the run's calls changed, first write first, each once: those workspace.write, .edit
 * and .multi_edit were given (as the model gave them), and those a workspace.bash command created
 * or changed (below the root, found by comparing the workspace before and after it: `files` on its
 * step, src/tools/workspace/changes.ts).
 */
export function writtenPaths(steps: readonly RunStep[]): string[] {
  const paths = new Map<string, string>();
  for (const s of steps)
    if (s.kind === 'model')
      for (const c of s.reply.tool_calls) {
        const p = (c.arguments as Record<string, unknown> | undefined)?.file_path;
        if (WRITE_TOOLS.has(c.name) && typeof p === 'string' && p !== '') paths.set(c.id, p);
      }
  const out = new Set<string>();
  for (const s of steps) {
    if (s.kind !== 'tool_end') continue;
    if (!s.is_error && WRITE_TOOLS.has(s.name)) {
      const p = paths.get(s.id);
      if (p !== undefined) out.add(p);
    }
    // A command names what it left whatever its exit: the files are there either way.
    for (const f of s.files ?? []) out.add(f);
  }
  return [...out];
}

function mediaTypeOf(name: string, text: boolean): string {
  const dot = name.lastIndexOf('.');
  const known = dot > name.lastIndexOf('/') ? MEDIA_TYPES[name.slice(dot + 1).toLowerCase()] : undefined;
  return known ?? (text ? 'text/plain' : 'application/octet-stream');
}

/** The bytes as UTF-8 text, or undefined for binary (a NUL byte or an invalid sequence). */
function asText(bytes: Buffer): string | undefined {
  if (bytes.includes(0)) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

type Found = { part: Part } | { left: { file: string; reason: string; size?: number } };

function fileOf(ws: Workspace, given: string): Found | undefined {
  let f: ReturnType<typeof readWorkspaceFile>;
  try {
    f = readWorkspaceFile(ws, given, MAX_ARTIFACT_FILE_BYTES);
  } catch (e) {
    return { left: { file: given, reason: scrubSecrets(e instanceof Error ? e.message : String(e)) } };
  }
  if (f === undefined) return undefined;
  if (f.bytes === undefined)
    return {
      left: {
        file: f.relative,
        size: f.size,
        reason: `larger than the ${MAX_ARTIFACT_FILE_BYTES} bytes a task carries`,
      },
    };
  const text = asText(f.bytes);
  let bytes = f.bytes;
  if (text !== undefined) bytes = Buffer.from(scrubSecrets(text));
  else if (scrubSecrets(bytes.toString('base64')) !== bytes.toString('base64'))
    return { left: { file: f.relative, size: f.size, reason: 'withheld: it holds a configured secret' } };
  return {
    part: {
      content: { $case: 'raw', value: bytes },
      metadata: undefined,
      filename: f.relative,
      mediaType: mediaTypeOf(f.relative, text !== undefined),
    },
  };
}

/**
 * The artifact "files" of a completed run that wrote files: a file part each (named by its path
 * below the workspace root), then a data part listing those not carried and why. Undefined when
 * the run has not completed, no workspace is granted or it wrote nothing still there.
 */
export function filesArtifact(
  ws: Workspace | undefined,
  run: RunRecord,
  steps: readonly RunStep[] | undefined,
): Artifact | undefined {
  if (ws === undefined || steps === undefined || run.status !== 'completed') return undefined;
  const paths = writtenPaths(steps);
  if (paths.length === 0) return undefined;
  const parts: Part[] = [];
  const left: { file: string; reason: string; size?: number }[] = [];
  const named = new Set<string>();
  for (const given of paths) {
    if (parts.length >= MAX_ARTIFACT_FILES) {
      left.push({ file: given, reason: `more than the ${MAX_ARTIFACT_FILES} files a task carries` });
      continue;
    }
    const got = fileOf(ws, given);
    if (got === undefined) continue;
    // One file written by a tool (its path as given) and by a command (below the root) is one part.
    const name = 'part' in got ? got.part.filename : got.left.file;
    if (named.has(name)) continue;
    named.add(name);
    if ('part' in got) parts.push(got.part);
    else left.push(got.left);
  }
  if (left.length > 0) parts.push(dataPart({ files_not_carried: left }));
  if (parts.length === 0) return undefined;
  return {
    artifactId: 'files',
    name: 'files',
    description: 'the files the agent wrote in the workspace',
    parts,
    metadata: undefined,
    extensions: [],
  };
}
