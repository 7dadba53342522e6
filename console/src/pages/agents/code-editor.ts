/**
 * The agent-file editor and the version diff, built on CodeMirror 6 (bundled: no CDN). This
 * module is its own chunk, loaded when an editor or a diff is first shown, so the console's first
 * page stays small. CodeMirror's styles go through constructable stylesheets, which the console's
 * content-security policy (style-src 'self') allows.
 */
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { markdownLanguage } from '@codemirror/lang-markdown';
import { yamlFrontmatter } from '@codemirror/lang-yaml';
import { StreamLanguage, defaultHighlightStyle, syntaxHighlighting } from '@codemirror/language';
import { json } from '@codemirror/legacy-modes/mode/javascript';
import { toml } from '@codemirror/legacy-modes/mode/toml';
import { unifiedMergeView } from '@codemirror/merge';
import { highlightSelectionMatches, searchKeymap } from '@codemirror/search';
import {
  Annotation,
  Compartment,
  EditorSelection,
  EditorState,
  StateEffect,
  StateField,
  type Extension,
} from '@codemirror/state';
import {
  Decoration,
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
  type DecorationSet,
} from '@codemirror/view';
import { StyleModule } from 'style-mod';

/**
 * CodeMirror's styles are generated at run time (style-mod). In a document it writes them into a
 * <style> element, which the console's content-security policy (style-src 'self', no inline
 * styles) refuses; in a shadow root it uses a constructable stylesheet, which the policy allows.
 * Its style set for a shadow root is given to the document too, so every editor's styles go
 * through that one adopted stylesheet. Editors stay in the document itself, where their labels
 * and descriptions (aria-describedby) reach them.
 */
function adoptStyles(): void {
  if (!('adoptedStyleSheets' in Document.prototype) || typeof CSSStyleSheet !== 'function') return;
  const probe = document.createElement('div').attachShadow({ mode: 'open' });
  StyleModule.mount(probe, new StyleModule({}));
  const doc = document as unknown as Record<symbol, unknown>;
  const shadow = probe as unknown as Record<symbol, unknown>;
  for (const key of Object.getOwnPropertySymbols(probe)) {
    const set = shadow[key];
    if (set && typeof set === 'object' && 'sheet' in set && !(key in doc)) doc[key] = set;
  }
}
adoptStyles();

export type SourceFormat = 'toml' | 'markdown' | 'json';

function language(format: SourceFormat): Extension {
  if (format === 'toml') return StreamLanguage.define(toml);
  if (format === 'json') return StreamLanguage.define(json);
  // Claude Code agent files: YAML frontmatter between --- lines, then Markdown.
  return yamlFrontmatter({ content: markdownLanguage });
}

/** Lines the server found problems on, marked in the text. */
const setProblemLines = StateEffect.define<number[]>();
const problemLines = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(deco, tr) {
    let d = deco.map(tr.changes);
    for (const e of tr.effects) {
      if (!e.is(setProblemLines)) continue;
      const doc = tr.state.doc;
      const lines = [...new Set(e.value.filter((n) => n >= 1 && n <= doc.lines))].sort((a, b) => a - b);
      d = Decoration.set(lines.map((n) => Decoration.line({ class: 'cm-problem-line' }).range(doc.line(n).from)));
    }
    return d;
  },
  provide: (f) => EditorView.decorations.from(f),
});

const base: Extension = [
  lineNumbers(),
  highlightActiveLineGutter(),
  highlightActiveLine(),
  drawSelection(),
  syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
  EditorView.lineWrapping,
];

export interface EditorHandle {
  text(): string;
  setText(text: string): void;
  setFormat(format: SourceFormat): void;
  /** Puts the cursor at `line` (1-based; `column` 1-based too), scrolls there and focuses the editor. */
  goTo(line: number, column?: number): void;
  /** Marks the lines the server found problems on. */
  markProblems(lines: number[]): void;
  /** The accessible attributes of the text (aria-invalid, aria-describedby). */
  setAria(attrs: Record<string, string>): void;
  destroy(): void;
}

export interface EditorOptions {
  doc: string;
  format: SourceFormat;
  /** The text's accessible name (its label). */
  label: string;
  id?: string;
  onChange: (text: string) => void;
}

/** Marks a change the page made (setText), which is not reported back to it as an edit. */
const fromPage = Annotation.define<boolean>();

export function mountEditor(parent: HTMLElement, opts: EditorOptions): EditorHandle {
  const lang = new Compartment();
  const aria = new Compartment();
  const ariaOf = (extra: Record<string, string>) =>
    EditorView.contentAttributes.of({ 'aria-label': opts.label, ...(opts.id && { id: opts.id }), ...extra });
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: opts.doc,
      extensions: [
        base,
        history(),
        highlightSelectionMatches(),
        problemLines,
        keymap.of([...defaultKeymap, ...historyKeymap, ...searchKeymap, indentWithTab]),
        lang.of(language(opts.format)),
        aria.of(ariaOf({})),
        EditorView.updateListener.of((u) => {
          // Only the user's edits go to the page: a text the page set is already the page's.
          if (u.docChanged && !u.transactions.some((t) => t.annotation(fromPage)))
            opts.onChange(u.state.doc.toString());
        }),
      ],
    }),
  });
  return {
    text: () => view.state.doc.toString(),
    setText(text) {
      if (text === view.state.doc.toString()) return;
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text }, annotations: fromPage.of(true) });
    },
    setFormat: (format) => view.dispatch({ effects: lang.reconfigure(language(format)) }),
    goTo(line, column) {
      const doc = view.state.doc;
      const l = doc.line(Math.min(Math.max(1, line), doc.lines));
      const pos = l.from + Math.min(Math.max(0, (column ?? 1) - 1), l.length);
      view.dispatch({
        selection: EditorSelection.cursor(pos),
        effects: EditorView.scrollIntoView(pos, { y: 'center' }),
      });
      view.focus();
    },
    markProblems: (lines) => view.dispatch({ effects: setProblemLines.of(lines) }),
    setAria: (attrs) => view.dispatch({ effects: aria.reconfigure(ariaOf(attrs)) }),
    destroy: () => view.destroy(),
  };
}

export interface DiffOptions {
  /** The text compared against (the live version). */
  original: string;
  /** The text shown, with what changed marked (the new version). */
  modified: string;
  format: SourceFormat;
  label: string;
}

/** A read-only unified diff: `modified` with `original`'s removed lines shown above what replaced them. */
export function mountDiff(parent: HTMLElement, opts: DiffOptions): { destroy(): void } {
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: opts.modified,
      extensions: [
        base,
        language(opts.format),
        EditorState.readOnly.of(true),
        EditorView.editable.of(false),
        EditorView.contentAttributes.of({ 'aria-label': opts.label }),
        unifiedMergeView({
          original: opts.original,
          mergeControls: false,
          syntaxHighlightDeletions: false,
          collapseUnchanged: { margin: 3, minSize: 6 },
        }),
      ],
    }),
  });
  return { destroy: () => view.destroy() };
}
