/**
 * Preact wrappers of the CodeMirror editor and diff (code-editor.ts), which load that chunk the
 * first time one is shown. `CodeEditor` hands its handle to the form (to move the cursor to an
 * error's line); `DiffView` shows what changes between two texts.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { loadChunk } from '../../chunks';
import { ErrorBox } from '../../components/feedback';
import type * as EditorModuleNs from './code-editor';
import type { EditorHandle, SourceFormat } from './code-editor';

type EditorModule = typeof EditorModuleNs;
let loading: Promise<EditorModule> | undefined;
const loadEditor = (): Promise<EditorModule> => (loading ??= loadChunk('editor', () => import('./code-editor')));

function useEditorModule(): { mod: EditorModule | undefined; error: unknown } {
  const [mod, setMod] = useState<EditorModule>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    let live = true;
    loadEditor().then(
      (m) => live && setMod(() => m),
      (e: unknown) => {
        loading = undefined;
        if (live) setError(e);
      },
    );
    return () => void (live = false);
  }, []);
  return { mod, error };
}

export interface CodeEditorProps {
  value: string;
  format: SourceFormat;
  label: string;
  id?: string;
  onChange: (text: string) => void;
  /** Lines with problems, marked in the text. */
  problemLines?: number[];
  aria?: Record<string, string>;
  /** Set to the editor once it is shown (undefined until then and after). */
  handle?: { current: EditorHandle | undefined };
}

export function CodeEditor(props: CodeEditorProps) {
  const { mod, error } = useEditorModule();
  const host = useRef<HTMLDivElement>(null);
  const ed = useRef<EditorHandle>();
  const onChange = useRef(props.onChange);
  onChange.current = props.onChange;
  /**
   * The texts the editor has reported that the page has not given back yet, oldest first. The page
   * renders a reported text some time after it was typed; keys typed meanwhile are already in the
   * editor, so a value the editor reported is never written back into it (that would undo those
   * keys, be reported as an edit, and start the two handing texts back and forth). Only a value
   * the editor never had (an agent's source loaded, a reset) replaces the editor's text.
   */
  const reported = useRef<string[]>([]);
  useEffect(() => {
    if (!mod || !host.current) return;
    ed.current = mod.mountEditor(host.current, {
      doc: props.value,
      format: props.format,
      label: props.label,
      ...(props.id !== undefined && { id: props.id }),
      onChange: (t) => {
        reported.current.push(t);
        onChange.current(t);
      },
    });
    if (props.handle) props.handle.current = ed.current;
    return () => {
      ed.current?.destroy();
      ed.current = undefined;
      if (props.handle) props.handle.current = undefined;
    };
  }, [mod]);
  useEffect(() => {
    const echoed = reported.current.lastIndexOf(props.value);
    if (echoed >= 0) {
      reported.current.splice(0, echoed + 1);
      return;
    }
    reported.current = [];
    ed.current?.setText(props.value);
  }, [mod, props.value]);
  useEffect(() => ed.current?.setFormat(props.format), [mod, props.format]);
  useEffect(() => ed.current?.markProblems(props.problemLines ?? []), [mod, (props.problemLines ?? []).join(',')]);
  useEffect(() => ed.current?.setAria(props.aria ?? {}), [mod, JSON.stringify(props.aria ?? {})]);
  return (
    <div class="code-editor" data-testid="code-editor">
      {error ? <ErrorBox error={error} /> : !mod && <p class="muted">Loading the editor…</p>}
      <div ref={host} />
    </div>
  );
}

export interface DiffViewProps {
  original: string;
  modified: string;
  format: SourceFormat;
  label: string;
}

/** What changes from `original` to `modified`; "No changes" when they are the same. */
export function DiffView(props: DiffViewProps) {
  const { mod, error } = useEditorModule();
  const host = useRef<HTMLDivElement>(null);
  const same = props.original === props.modified;
  useEffect(() => {
    if (!mod || !host.current || same) return;
    const d = mod.mountDiff(host.current, props);
    return () => d.destroy();
  }, [mod, props.original, props.modified, props.format]);
  if (same)
    return (
      <p class="muted" data-testid="diff-none">
        No changes: the two texts are the same.
      </p>
    );
  return (
    <div class="code-editor diff" data-testid="diff">
      {error ? <ErrorBox error={error} /> : !mod && <p class="muted">Loading the diff…</p>}
      <div ref={host} />
    </div>
  );
}
