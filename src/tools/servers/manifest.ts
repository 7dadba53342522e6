/**
 * `caxton-tool.toml`: what a tool server package declares — its name, version and description,
 * the module file, the tools it provides (an exported function each, with JSON-schema input and
 * optional output), resource limits, the hosts and paths it needs, and the configuration values it
 * reads. Errors and warnings name the file, line, column and field, like agent files.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { z } from 'zod';
import { fieldPath, formatIssue, type SourceIssue } from '../../shared/issues.js';
import { closest } from '../../shared/suggest.js';
import { tomlLocator } from '../../shared/toml-locator.js';
import { parseTomlBounded } from '../../shared/toml.js';
import { decodeUtf8 } from '../../shared/utf8.js';
import { HOST_GRANT_HINT, HOST_GRANT_RE } from '../../shared/host-grants.js';
import { CaxtonError } from '../../shared/errors.js';
import {
  DEFAULT_WASM_LIMITS,
  requestedWasmLimits,
  WASM_LIMIT_KEYS,
  wasmLimitFields,
  wasmLimits,
  type WasmLimits,
} from '../../shared/wasm-limits.js';
import { normalizeGuestRoot, type PathAccess } from './fs-access.js';

export const MANIFEST_FILE = 'caxton-tool.toml';

/** Server and tool names: lower-case, no dots (the registry name is `server.tool`). */
export const TOOL_SERVER_NAME_RE = /^[a-z][a-z0-9_-]{0,63}$/;

/** A tool server's limits: the same as a WebAssembly agent's (src/shared/wasm-limits.ts). */
export type ToolLimits = WasmLimits;

export const DEFAULT_TOOL_LIMITS: Readonly<ToolLimits> = DEFAULT_WASM_LIMITS;

export interface ToolDeclaration {
  name: string;
  description: string;
  /** The exported function that implements it (defaults to the tool name). */
  export: string;
  input_schema: Record<string, unknown>;
  output_schema?: Record<string, unknown>;
  /** Running it twice with the same input has the effect of once: an interrupted durable run may call it again. */
  idempotent?: boolean;
}

export interface ConfigDeclaration {
  description?: string;
  default?: string;
  required: boolean;
}

/** How the module runs: WebAssembly (Extism kernel ABI) or JavaScript in QuickJS-in-WebAssembly. */
export type ToolRuntime = 'wasm' | 'quickjs';

export interface ToolManifest {
  name: string;
  version: string;
  description: string;
  /** Module file, relative to the manifest's directory. */
  module: string;
  /** `runtime` if given, else `quickjs` when the module ends in `.js`/`.mjs`, else `wasm`. */
  runtime: ToolRuntime;
  tools: ToolDeclaration[];
  /** The limits the server runs with: what `[limits]` asks for, defaults for what it leaves out. */
  limits: ToolLimits;
  /** Only what `[limits]` states (checked against the operator's caps, manifest-limits.ts). */
  requested_limits: Partial<ToolLimits>;
  permissions: {
    allowed_hosts: string[];
    /** Guest-side root → access. */
    paths: Record<string, PathAccess>;
    /** Guest-side SQLite database files or directories, queried read-only (`caxton_sqlite_query`). */
    databases: string[];
  };
  config: Record<string, ConfigDeclaration>;
}

const SEMVER_RE = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
const EXPORT_RE = /^[A-Za-z_$][A-Za-z0-9_$.-]{0,127}$/;

const name = z.string({ error: 'expected a string' }).regex(TOOL_SERVER_NAME_RE, {
  message: 'expected a lower-case name: a letter, then letters, digits, "-" or "_" (at most 64 characters, no dots)',
});
const jsonSchema = z.record(z.string(), z.unknown(), { error: 'expected a JSON schema (a table / object)' });

const toolSchema = z.strictObject({
  name,
  description: z.string({ error: 'expected a string' }).min(1, { message: 'must not be empty' }),
  export: z.string().regex(EXPORT_RE, { message: 'expected the name of an exported function' }).optional(),
  input_schema: jsonSchema.default({ type: 'object' }),
  output_schema: jsonSchema.optional(),
  idempotent: z.boolean({ error: 'expected true or false' }).optional(),
});

const limitsSchema = z.strictObject(wasmLimitFields);

const configEntry = z.union(
  [
    z.string(),
    z.strictObject({
      description: z.string().optional(),
      default: z.string().optional(),
      required: z.boolean().optional(),
    }),
  ],
  {
    error: 'expected a default value (string) or a table with description, default, required',
  },
);

const manifestSchema = z.strictObject({
  name,
  version: z
    .string({ error: 'expected a string' })
    .regex(SEMVER_RE, { message: 'expected a semantic version such as "1.0.0"' }),
  description: z.string({ error: 'expected a string' }).min(1, { message: 'must not be empty' }),
  module: z.string().min(1).optional(),
  runtime: z.enum(['wasm', 'quickjs'], { error: 'expected "wasm" or "quickjs"' }).optional(),
  tools: z
    .array(toolSchema, { error: 'expected [[tools]] tables' })
    .min(1, { message: 'a tool server must provide at least one tool' }),
  limits: limitsSchema.default({}),
  permissions: z
    .strictObject({
      allowed_hosts: z.array(z.string().regex(HOST_GRANT_RE, { message: HOST_GRANT_HINT })).default([]),
      paths: z.record(z.string(), z.enum(['read', 'write'], { error: 'expected "read" or "write"' })).default({}),
      databases: z.array(z.string({ error: 'expected a guest path such as "/db" or "/db/sales.db"' })).default([]),
    })
    .default({ allowed_hosts: [], paths: {}, databases: [] }),
  config: z
    .record(
      z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, { message: 'expected a config key of letters, digits, "_", "-", "."' }),
      configEntry,
    )
    .default({}),
});

const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': ['name', 'version', 'description', 'module', 'runtime', 'tools', 'limits', 'permissions', 'config'],
  tools: ['name', 'description', 'export', 'input_schema', 'output_schema', 'idempotent'],
  limits: WASM_LIMIT_KEYS,
  permissions: ['allowed_hosts', 'paths', 'databases'],
};

export type ManifestResult =
  | { ok: true; manifest: ToolManifest; warnings: SourceIssue[] }
  | { ok: false; errors: SourceIssue[]; warnings: SourceIssue[] };

let ajv: Ajv | undefined;
/** The shared JSON-schema compiler (lenient about unknown keywords, all errors reported). */
export function schemaCompiler(): Ajv {
  ajv ??= new Ajv({ strict: false, allErrors: true });
  return ajv;
}

const compiled = new Map<string, ValidateFunction>();

/**
 * Compiles a tool's JSON schema (cached by its JSON text: compiling costs about half a
 * millisecond, and 1,000 servers of one package share one validator). Throws with Ajv's message
 * when the schema itself is invalid.
 */
export function compileSchema(schema: Record<string, unknown>): ValidateFunction {
  const key = JSON.stringify(schema);
  let v = compiled.get(key);
  if (!v) {
    v = schemaCompiler().compile(schema);
    if (compiled.size >= 10_000) compiled.clear();
    compiled.set(key, v);
  }
  return v;
}

function valueAt(doc: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = doc;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

export interface ManifestParseOptions {
  /**
   * Compile the tools' JSON schemas to prove them valid (default true). A server's start reads its
   * manifest first without it, to register the tools at once; the full check runs when it loads.
   */
  compileSchemas?: boolean;
}

/** Builds an issue located at `path` in the manifest (its field and, when found, line and column). */
type IssueAt = (
  path: readonly (string | number)[],
  i: Omit<SourceIssue, 'file' | 'line' | 'column' | 'field'>,
) => SourceIssue;

type ManifestDoc = z.infer<typeof manifestSchema>;

/** Parses and validates a `caxton-tool.toml`, returning every error found. */
export function parseToolManifest(
  input: string | Uint8Array,
  file: string = MANIFEST_FILE,
  opts: ManifestParseOptions = {},
): ManifestResult {
  const at = (i: Omit<SourceIssue, 'file'>): SourceIssue => ({ ...i, file });
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    const d = decodeUtf8(input);
    if (!d.ok)
      return {
        ok: false,
        warnings: [],
        errors: [
          at({
            severity: 'error',
            code: 'not_utf8',
            message: `the file is not valid UTF-8 (invalid byte at offset ${d.offset})`,
            line: d.line,
            column: d.column,
          }),
        ],
      };
    text = d.text;
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const parsed = parseTomlBounded(text);
  if (!parsed.ok) return { ok: false, warnings: [], errors: [at(parsed.issue)] };
  const doc = parsed.doc;
  const locate = tomlLocator(text);
  const withPos: IssueAt = (path, i) => {
    // [[tools]] entries are located by their table header, not by index.
    const pos = locate(path.filter((p) => typeof p === 'string'));
    return at({
      ...i,
      ...(path.length > 0 && { field: fieldPath(path) }),
      ...(pos && { line: pos.line, column: pos.column }),
    });
  };
  const warnings: SourceIssue[] = [];
  const errors: SourceIssue[] = [];

  const result = parseWithoutUnknownKeys(doc, withPos, warnings);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const path = issue.path as (string | number)[];
      const missing = issue.code === 'invalid_type' && valueAt(doc, path) === undefined;
      errors.push(
        withPos(path, {
          severity: 'error',
          code: missing ? 'missing_field' : issue.code === 'invalid_type' ? 'invalid_type' : 'invalid_value',
          message: missing ? `required field "${fieldPath(path)}" is missing` : issue.message,
        }),
      );
    }
    return { ok: false, errors, warnings };
  }
  const d = result.data;

  const tools = toolDeclarations(d.tools, withPos, errors, opts);
  const { paths, databases } = guestGrants(d.permissions, withPos, errors);

  const config: Record<string, ConfigDeclaration> = {};
  for (const [k, v] of Object.entries(d.config)) {
    config[k] = typeof v === 'string' ? { default: v, required: false } : { ...v, required: v.required ?? false };
  }

  const limits: ToolLimits = wasmLimits(d.limits);
  const requested: Partial<ToolLimits> = requestedWasmLimits(d.limits);
  const { runtime, module } = runtimeAndModule(d, withPos, errors);
  if (errors.length > 0) return { ok: false, errors, warnings };
  return {
    ok: true,
    warnings,
    manifest: {
      name: d.name,
      version: d.version,
      description: d.description,
      module,
      runtime,
      tools,
      limits,
      requested_limits: requested,
      permissions: { allowed_hosts: d.permissions.allowed_hosts, paths, databases },
      config,
    },
  };
}

/**
 * Validates the manifest against its schema, dropping each unknown key with a warning (and a
 * guess at the key meant) so that the rest is still checked.
 */
function parseWithoutUnknownKeys(doc: unknown, withPos: IssueAt, warnings: SourceIssue[]) {
  let result = manifestSchema.safeParse(doc);
  for (let guard = 0; !result.success && guard < 8; guard++) {
    const unknown = result.error.issues.filter((i) => i.code === 'unrecognized_keys');
    if (unknown.length === 0) break;
    for (const issue of unknown) {
      const parentPath = issue.path as (string | number)[];
      const parent = valueAt(doc, parentPath) as Record<string, unknown>;
      const known = KNOWN_KEYS[String(parentPath[0] ?? '')] ?? [];
      for (const key of (issue as unknown as { keys: string[] }).keys) {
        delete parent[key];
        const guess = closest(key, known);
        warnings.push(
          withPos([...parentPath, key], {
            severity: 'warning',
            code: 'unknown_key',
            message: `unknown key "${key}" is ignored`,
            ...(guess && { suggestion: `did you mean "${guess}"?` }),
          }),
        );
      }
    }
    result = manifestSchema.safeParse(doc);
  }
  return result;
}

/** The [[tools]] entries, each name given once and each schema an object's and valid (unless compileSchemas is false). */
function toolDeclarations(
  declared: ManifestDoc['tools'],
  withPos: IssueAt,
  errors: SourceIssue[],
  opts: ManifestParseOptions,
): ToolDeclaration[] {
  const seen = new Set<string>();
  return declared.map((t, i) => {
    if (seen.has(t.name))
      errors.push(
        withPos(['tools', i, 'name'], {
          severity: 'error',
          code: 'duplicate_tool',
          message: `tool "${t.name}" is declared twice`,
        }),
      );
    seen.add(t.name);
    for (const key of ['input_schema', 'output_schema'] as const) {
      const schema = t[key];
      if (schema === undefined) continue;
      if (key === 'input_schema' && schema.type !== undefined && schema.type !== 'object') {
        errors.push(
          withPos(['tools', i, key], {
            severity: 'error',
            code: 'invalid_value',
            message: 'the input schema must describe an object (type = "object"): tool arguments are a JSON object',
          }),
        );
      }
      if (opts.compileSchemas === false) continue;
      try {
        compileSchema(schema);
      } catch (e) {
        errors.push(
          withPos(['tools', i, key], {
            severity: 'error',
            code: 'invalid_schema',
            message: `not a valid JSON schema: ${(e as Error).message}`,
          }),
        );
      }
    }
    return {
      name: t.name,
      description: t.description,
      export: t.export ?? t.name,
      input_schema: t.input_schema,
      ...(t.output_schema && { output_schema: t.output_schema }),
      ...(t.idempotent === true && { idempotent: true }),
    };
  });
}

/** The guest paths and databases granted, normalized (absolute, no ".."); a bad one is an error. */
function guestGrants(
  permissions: ManifestDoc['permissions'],
  withPos: IssueAt,
  errors: SourceIssue[],
): { paths: Record<string, PathAccess>; databases: string[] } {
  const paths: Record<string, PathAccess> = {};
  for (const [guest, access] of Object.entries(permissions.paths)) {
    const norm = normalizeGuestRoot(guest);
    if (norm === undefined) {
      errors.push(
        withPos(['permissions', 'paths', guest], {
          severity: 'error',
          code: 'invalid_value',
          message: `"${guest}" is not a valid guest path: expected an absolute path without ".." (e.g. "/data")`,
        }),
      );
      continue;
    }
    paths[norm] = access;
  }

  const databases: string[] = [];
  permissions.databases.forEach((guest, i) => {
    const norm = normalizeGuestRoot(guest);
    if (norm === undefined || norm === '/') {
      errors.push(
        withPos(['permissions', 'databases', i], {
          severity: 'error',
          code: 'invalid_value',
          message: `"${guest}" is not a valid database path: expected an absolute path without ".." (e.g. "/db" or "/db/sales.db")`,
        }),
      );
      return;
    }
    if (!databases.includes(norm)) databases.push(norm);
  });
  return { paths, databases };
}

/** The runtime (from the module's extension when not given) and the module file, inside the package. */
function runtimeAndModule(
  d: ManifestDoc,
  withPos: IssueAt,
  errors: SourceIssue[],
): { runtime: ToolRuntime; module: string } {
  const runtime: ToolRuntime = d.runtime ?? (d.module !== undefined && /\.m?js$/i.test(d.module) ? 'quickjs' : 'wasm');
  const module = d.module ?? `${d.name}.${runtime === 'quickjs' ? 'js' : 'wasm'}`;
  if (runtime === 'wasm' && /\.m?js$/i.test(module)) {
    errors.push(
      withPos(['runtime'], {
        severity: 'error',
        code: 'invalid_value',
        message: `module "${module}" is JavaScript but runtime is "wasm": remove runtime or set it to "quickjs"`,
      }),
    );
  }
  if (module.startsWith('/') || module.split(/[\\/]/).includes('..')) {
    errors.push(
      withPos(['module'], {
        severity: 'error',
        code: 'invalid_value',
        message: `module "${module}" must be a path inside the package directory (relative, without "..")`,
      }),
    );
  }
  return { runtime, module };
}

/** Like parseToolManifest, but throws CaxtonError('validation_failed') listing every error (one per line). */
export function parseToolManifestOrThrow(
  input: string | Uint8Array,
  file: string = MANIFEST_FILE,
  opts: ManifestParseOptions = {},
): { manifest: ToolManifest; warnings: SourceIssue[] } {
  const r = parseToolManifest(input, file, opts);
  if (!r.ok) {
    throw new CaxtonError('validation_failed', `invalid tool manifest:\n${r.errors.map(formatIssue).join('\n')}`, {
      file,
      errors: r.errors,
      warnings: r.warnings,
    });
  }
  return { manifest: r.manifest, warnings: r.warnings };
}
