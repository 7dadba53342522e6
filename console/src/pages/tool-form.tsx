/**
 * The "call a tool" form, generated from the tool's JSON schema (Tools page): strings, numbers,
 * integers, booleans and enums as inputs, objects, arrays and untyped values as JSON text areas,
 * and an "edit as JSON" mode for the whole argument object. JSON that does not parse is shown next
 * to its field with its line and column and nothing is sent; the server's refusal (its error
 * envelope) is shown next to the field it names.
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { parseJsonText } from './json-text';

export interface ToolSpec {
  name: string;
  description: string;
  input_schema: Record<string, unknown>;
  output_schema?: Record<string, unknown>;
}

export interface CallResult {
  tool: string;
  content: string;
  is_error: boolean;
  outcome: string;
  duration_us: number;
  fuel_used: number;
  memory_bytes: number;
  execution_id: string;
  kind?: string;
  json?: unknown;
}

interface Prop {
  name: string;
  schema: Record<string, unknown>;
  required: boolean;
  kind: 'string' | 'number' | 'integer' | 'boolean' | 'enum' | 'json';
}

/** The form's fields: one per property of the input schema. */
export function fieldsOf(schema: Record<string, unknown>): Prop[] {
  const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  return Object.entries(props).map(([name, s]) => {
    const t = s.type;
    const kind: Prop['kind'] = Array.isArray(s.enum)
      ? 'enum'
      : t === 'string' || t === 'number' || t === 'integer' || t === 'boolean'
        ? t
        : 'json';
    return { name, schema: s, required: required.has(name), kind };
  });
}

/** The server names the failed field in details.field or details.issues[].field; a schema failure names a JSON pointer ("/query must be string"). */
function blamedField(e: unknown, result: CallResult | undefined, names: string[]): string | undefined {
  if (e instanceof ApiError) {
    if (e.field) return e.field.replace(/^args\.?/, '') || 'args';
    const issues = Array.isArray(e.details.issues) ? (e.details.issues as { field?: string }[]) : [];
    const f = issues.find((i) => typeof i.field === 'string')?.field;
    if (f) return f.replace(/^args\.?/, '') || 'args';
  }
  if (result?.is_error && result.outcome === 'invalid_input') {
    const m = /\/([^/\s]+)/.exec(result.content);
    if (m && names.includes(m[1]!)) return m[1];
    const missing = /property '([^']+)'/.exec(result.content);
    if (missing && names.includes(missing[1]!)) return missing[1];
  }
  return undefined;
}

const idOf = (tool: string, field: string) => `f-${tool.replace(/[^\w-]/g, '_')}-${field.replace(/[^\w-]/g, '_')}`;

function initial(fields: Prop[]): Record<string, string> {
  const v: Record<string, string> = {};
  for (const f of fields)
    v[f.name] =
      f.schema.default !== undefined
        ? f.kind === 'json'
          ? JSON.stringify(f.schema.default, null, 2)
          : String(f.schema.default)
        : '';
  return v;
}

export function ToolCallForm({ server, spec, onCalled }: { server: string; spec: ToolSpec; onCalled?: () => void }) {
  const fields = fieldsOf(spec.input_schema);
  const [values, setValues] = useState<Record<string, string>>(() => initial(fields));
  const [asJson, setAsJson] = useState(fields.length === 0 && spec.input_schema.properties === undefined);
  const [jsonText, setJsonText] = useState('{}');
  const [local, setLocal] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>();
  const [result, setResult] = useState<CallResult>();
  const [busy, setBusy] = useState(false);
  const tool = spec.name.startsWith(`${server}.`) ? spec.name.slice(server.length + 1) : spec.name;
  const base = idOf(spec.name, '');

  /** The arguments from the fields; located errors per field when some do not parse. */
  const collect = (): { args?: Record<string, unknown>; errors: Record<string, string> } => {
    const errors: Record<string, string> = {};
    const args: Record<string, unknown> = {};
    for (const f of fields) {
      const raw = values[f.name] ?? '';
      if (raw.trim() === '') {
        if (f.required) errors[f.name] = 'required';
        continue;
      }
      if (f.kind === 'string' || f.kind === 'enum') args[f.name] = raw;
      else if (f.kind === 'boolean') args[f.name] = raw === 'true';
      else if (f.kind === 'number' || f.kind === 'integer') {
        const n = Number(raw);
        if (!Number.isFinite(n) || (f.kind === 'integer' && !Number.isInteger(n)))
          errors[f.name] = `expected ${f.kind === 'integer' ? 'a whole number' : 'a number'}`;
        else args[f.name] = n;
      } else {
        try {
          args[f.name] = parseJsonText(raw);
        } catch (e) {
          errors[f.name] = `invalid JSON: ${(e as Error).message}`;
        }
      }
    }
    return Object.keys(errors).length > 0 ? { errors } : { args, errors };
  };

  const toggle = () => {
    if (!asJson) {
      const { args } = collect();
      setJsonText(JSON.stringify(args ?? {}, null, 2));
    }
    setLocal({});
    setError(undefined);
    setResult(undefined);
    setAsJson(!asJson);
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(undefined);
    setResult(undefined);
    let args: unknown;
    if (asJson) {
      try {
        args = parseJsonText(jsonText);
      } catch (x) {
        setLocal({ args: `invalid JSON: ${(x as Error).message}` });
        return;
      }
    } else {
      const c = collect();
      if (!c.args) {
        setLocal(c.errors);
        return;
      }
      args = c.args;
    }
    setLocal({});
    setBusy(true);
    try {
      const r = await api<CallResult>(
        'POST',
        `/api/v1/tools/${encodeURIComponent(server)}/${encodeURIComponent(tool)}/call`,
        { json: { args } },
      );
      setResult(r);
    } catch (x) {
      setError(x);
    } finally {
      setBusy(false);
      onCalled?.();
    }
  };

  const names = fields.map((f) => f.name);
  const blamed = blamedField(error, result, names);
  // Where the server's complaint is shown: the JSON editor, the field it names, or (neither) above the buttons.
  const shownAt = blamed === undefined ? undefined : asJson ? 'args' : names.includes(blamed) ? blamed : undefined;
  const serverMsg = (field: string): string | undefined => {
    if (shownAt !== field) return undefined;
    if (error instanceof ApiError) return error.explanation;
    if (result?.is_error) return result.content;
    return undefined;
  };
  const fieldError = (field: string): string | undefined => local[field] ?? serverMsg(field);

  return (
    <form class="tool-form" onSubmit={submit} noValidate aria-label={`Call ${spec.name}`}>
      {asJson ? (
        <FieldShell
          id={`${base}args`}
          label="Arguments (JSON object)"
          error={fieldError('args')}
          hint="The whole argument object, as JSON."
        >
          {(p) => (
            <textarea
              {...p}
              class="code json"
              rows={8}
              spellcheck={false}
              value={jsonText}
              onInput={(e) => setJsonText((e.target as HTMLTextAreaElement).value)}
            />
          )}
        </FieldShell>
      ) : (
        fields.map((f) => (
          <FieldShell
            key={f.name}
            id={idOf(spec.name, f.name)}
            label={`${f.name}${f.required ? ' (required)' : ''}`}
            error={fieldError(f.name)}
            hint={[
              typeof f.schema.description === 'string' ? f.schema.description : '',
              f.kind === 'json' ? `JSON${typeHint(f.schema)}` : '',
            ]
              .filter(Boolean)
              .join(' — ')}
          >
            {(p) => (
              <Input f={f} p={p} value={values[f.name] ?? ''} set={(v) => setValues({ ...values, [f.name]: v })} />
            )}
          </FieldShell>
        ))
      )}
      {!asJson && fields.length === 0 && <p class="muted">This tool takes no arguments.</p>}
      {error !== undefined && shownAt === undefined && (
        <p class="field-error" role="alert">
          {error instanceof ApiError ? error.explanation : String(error)}
        </p>
      )}
      <div class="row">
        <button type="submit" disabled={busy}>
          {busy ? 'Calling…' : `Call ${spec.name}`}
        </button>
        <button type="button" class="secondary" onClick={toggle}>
          {asJson ? 'Edit as form' : 'Edit as JSON'}
        </button>
      </div>
      {result && <ResultView r={result} />}
    </form>
  );
}

function typeHint(s: Record<string, unknown>): string {
  const t = s.type;
  if (t === 'object') return ' object';
  if (t === 'array') return ' array';
  if (Array.isArray(t)) return ` (${t.join(' or ')})`;
  return ' value';
}

interface FieldProps {
  id: string;
  'aria-describedby'?: string;
  'aria-invalid'?: boolean;
}

function FieldShell({
  id,
  label,
  hint,
  error,
  children,
}: {
  id: string;
  label: string;
  hint?: string;
  error: string | undefined;
  children: (p: FieldProps) => JSX.Element;
}) {
  const describedBy = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children({
        id,
        ...(describedBy && { 'aria-describedby': describedBy }),
        ...(error && { 'aria-invalid': true }),
      })}
      {hint && (
        <p id={`${id}-hint`} class="muted small hint">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} class="field-error" role="alert" data-testid="field-error">
          {error}
        </p>
      )}
    </div>
  );
}

function Input({ f, p, value, set }: { f: Prop; p: FieldProps; value: string; set: (v: string) => void }) {
  const on = (e: Event) => set((e.target as HTMLInputElement).value);
  if (f.kind === 'enum') {
    return (
      <select {...p} value={value} onChange={on}>
        <option value="">{f.required ? 'choose…' : '(not set)'}</option>
        {(f.schema.enum as unknown[]).map((v) => (
          <option key={String(v)} value={String(v)}>
            {String(v)}
          </option>
        ))}
      </select>
    );
  }
  if (f.kind === 'boolean') {
    return (
      <select {...p} value={value} onChange={on}>
        <option value="">(not set)</option>
        <option value="true">true</option>
        <option value="false">false</option>
      </select>
    );
  }
  if (f.kind === 'number' || f.kind === 'integer')
    return (
      <input {...p} type="text" inputMode={f.kind === 'integer' ? 'numeric' : 'decimal'} value={value} onInput={on} />
    );
  if (f.kind === 'string') return <input {...p} type="text" value={value} onInput={on} />;
  return <textarea {...p} class="code json" rows={4} spellcheck={false} value={value} onInput={on} />;
}

function ResultView({ r }: { r: CallResult }) {
  return (
    <section class={`call-result${r.is_error ? ' failed' : ''}`} aria-label="Result" data-testid="call-result">
      <p>
        <strong>{r.is_error ? `Failed (${r.outcome})` : 'OK'}</strong> · {(r.duration_us / 1000).toFixed(1)} ms ·
        execution <code>{r.execution_id}</code>
      </p>
      <pre class="source">{r.json !== undefined ? JSON.stringify(r.json, null, 2) : r.content}</pre>
    </section>
  );
}
