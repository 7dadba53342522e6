import { readFileSync } from 'node:fs';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { ApiError, type ApiClient, type ApiErrorBody } from '../api-client.js';
import type { CliContext } from '../context.js';
import { CliError, usageError } from '../errors.js';
import { table, truncate } from '../output.js';
import { collect } from './message-command.js';
import { writePrivateFileSync } from '../../shared/private-fs.js';

interface EntityJson {
  scope: string;
  name: string;
  entityType: string;
  observations: string[];
  metadata: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}
interface RelationJson {
  scope: string;
  from: string;
  to: string;
  relationType: string;
}
interface HitJson {
  entity: EntityJson;
  score: number;
  similarity: number;
  keyword: number;
}
interface StatsJson {
  entities: number;
  relations: number;
  observations: number;
  by_scope: Record<string, { entities: number; relations: number }>;
  embedding: { model: string; dimensions: number; indexed: number } | null;
  database_bytes?: number;
}

const qs = (params: Record<string, string | number | undefined>) => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
};

function number(v: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw usageError(`${flag} expects a number between ${min} and ${max}, got "${v}"`);
  return n;
}

interface ImportAnswer {
  format: string;
  entities: number;
  relations: number;
  entities_created: number;
  entities_updated: number;
  relations_created: number;
}

/**
 * POSTs an import asking for a stream: the server's `progress` events drive a progress bar on a
 * terminal's stderr, `result` is the answer, `error` fails with the server's error. Input errors
 * come back before the stream opens, as a plain error response.
 */
async function streamImport(client: ApiClient, path: string, text: string): Promise<ImportAnswer> {
  const bar = process.stderr.isTTY
    ? new SingleBar({
        format: 'embedding [{bar}] {value}/{total} entities  {eta_formatted} left',
        stream: process.stderr,
        hideCursor: true,
      })
    : undefined;
  let started = false;
  let result: ImportAnswer | undefined;
  let failure: ApiErrorBody | undefined;
  try {
    await client.events(
      path,
      (event, raw) => {
        const d = JSON.parse(raw) as Record<string, unknown>;
        if (event === 'progress' && bar) {
          const { done, total } = d as { done: number; total: number };
          if (!started) {
            bar.start(total, done);
            started = true;
          } else bar.update(done);
        } else if (event === 'result') result = d as unknown as ImportAnswer;
        else if (event === 'error') failure = d as unknown as ApiErrorBody;
      },
      { method: 'POST', body: text, contentType: 'application/x-ndjson' },
    );
  } finally {
    if (started) bar?.stop();
  }
  if (failure) throw new ApiError(500, failure);
  if (!result)
    throw new CliError(
      `the server at ${client.base} ended the import stream without a result; check \`caxton memory stats\` (an import is all or nothing)`,
    );
  return result;
}

const SCOPE_HELP = 'scope: "workspace", "global" or "agent:NAME"';

/** `caxton memory ...`: the knowledge graph through the REST API. */
export function registerMemoryCommands(program: Command, ctx: CliContext): void {
  const memory = program
    .command('memory')
    .description('the memory knowledge graph: search, add entities and relations, show, export, import, stats');

  registerMemorySearch(memory, ctx);
  registerMemoryAdd(memory, ctx);
  registerMemoryRelate(memory, ctx);
  registerMemoryShow(memory, ctx);
  registerMemoryExport(memory, ctx);
  registerMemoryImport(memory, ctx);
  registerMemoryStats(memory, ctx);
}

/** `caxton memory search <query>`. */
function registerMemorySearch(memory: Command, ctx: CliContext): void {
  memory
    .command('search')
    .description('find entities by meaning and keywords (hybrid), best first')
    .argument('<query>', 'what to look for')
    .option('--scope <scope>', `${SCOPE_HELP} (default: every scope)`)
    .option('--type <type>', 'only entities of this type')
    .option('--limit <n>', 'most results (1-100)', '10')
    .option('--min-similarity <x>', 'least score (0-1)')
    .option('--mode <mode>', 'hybrid, semantic or keyword', 'hybrid')
    .action(
      async (
        query: string,
        o: { scope?: string; type?: string; limit: string; minSimilarity?: string; mode: string },
      ) => {
        const out = ctx.output();
        if (!['hybrid', 'semantic', 'keyword'].includes(o.mode))
          throw usageError(`--mode expects hybrid, semantic or keyword, got "${o.mode}"`);
        const body = {
          query,
          limit: number(o.limit, '--limit', 1, 100),
          mode: o.mode,
          ...(o.scope !== undefined && { scope: o.scope }),
          ...(o.type !== undefined && { entity_type: o.type }),
          ...(o.minSimilarity !== undefined && { min_similarity: number(o.minSimilarity, '--min-similarity', 0, 1) }),
        };
        const { data } = await ctx
          .client()
          .post<{ results: HitJson[] }>('/api/v1/memory/search', body, { timeoutMs: 120_000 });
        if (out.json) return out.data(data);
        if (data.results.length === 0) return out.out('no matching memories');
        out.out(
          table(
            ['SCORE', 'SCOPE', 'TYPE', 'NAME', 'OBSERVATIONS'],
            data.results.map((h) => [
              h.score.toFixed(3),
              h.entity.scope,
              h.entity.entityType,
              h.entity.name,
              truncate(h.entity.observations.join('; '), 80),
            ]),
          ),
        );
      },
    );
}

/** `caxton memory add`. */
function registerMemoryAdd(memory: Command, ctx: CliContext): void {
  memory
    .command('add')
    .description('create an entity, or add observations to it when it exists')
    .argument('<name>', 'entity name')
    .requiredOption('--type <type>', 'entity type, e.g. person')
    .option('-o, --observation <text>', 'an observation; repeatable', collect)
    .option('--scope <scope>', SCOPE_HELP, 'workspace')
    .action(async (name: string, o: { type: string; observation?: string[]; scope: string }) => {
      const out = ctx.output();
      const observations = o.observation ?? [];
      const client = ctx.client();
      const { data } = await client.post<{ created: unknown[] }>(
        `/api/v1/memory/entities${qs({ scope: o.scope })}`,
        { entities: [{ name, entityType: o.type, observations }] },
        { timeoutMs: 120_000 },
      );
      let added: string[] = observations;
      if (data.created.length === 0 && observations.length > 0) {
        const r = await client.post<{ addedObservations: string[] }>(
          `/api/v1/memory/entities/${encodeURIComponent(name)}/observations${qs({ scope: o.scope })}`,
          { contents: observations },
          { timeoutMs: 120_000 },
        );
        added = r.data.addedObservations;
      }
      if (out.json)
        return out.data({ scope: o.scope, name, created: data.created.length > 0, added_observations: added });
      out.out(
        `${data.created.length > 0 ? 'created' : 'updated'} ${name} in ${o.scope} (${added.length} observation${added.length === 1 ? '' : 's'} added)`,
      );
    });
}

/** `caxton memory relate`. */
function registerMemoryRelate(memory: Command, ctx: CliContext): void {
  memory
    .command('relate')
    .description('create a relation FROM --type--> TO (active voice, e.g. works_at)')
    .argument('<from>')
    .argument('<relation-type>')
    .argument('<to>')
    .option('--scope <scope>', SCOPE_HELP, 'workspace')
    .action(async (from: string, relationType: string, to: string, o: { scope: string }) => {
      const out = ctx.output();
      const { data } = await ctx
        .client()
        .post<{ created: unknown[] }>(`/api/v1/memory/relations${qs({ scope: o.scope })}`, {
          relations: [{ from, to, relationType }],
        });
      if (out.json)
        return out.data({ scope: o.scope, created: data.created.length > 0, relation: { from, to, relationType } });
      out.out(
        data.created.length > 0
          ? `${from} --${relationType}--> ${to} (${o.scope})`
          : `already there: ${from} --${relationType}--> ${to}`,
      );
    });
}

/** `caxton memory show`. */
function registerMemoryShow(memory: Command, ctx: CliContext): void {
  memory
    .command('show')
    .description('an entity with its observations and relations; with --depth, the graph around it')
    .argument('<name>')
    .option('--scope <scope>', `${SCOPE_HELP} (default: every scope; required with --depth)`)
    .option('--depth <n>', 'walk relations up to this many hops (0-10)')
    .option('--relation <type>', 'with --depth: follow only this relation type; repeatable', collect)
    .option('--direction <dir>', 'with --depth: out, in or both', 'both')
    .action(async (name: string, o: { scope?: string; depth?: string; relation?: string[]; direction: string }) => {
      const out = ctx.output();
      const client = ctx.client();
      if (o.depth !== undefined) {
        const data = await client.get<{
          entities: (EntityJson & { depth: number })[];
          relations: RelationJson[];
          truncated: boolean;
        }>(
          `/api/v1/memory/traverse${qs({ from: name, scope: o.scope ?? 'workspace', max_depth: number(o.depth, '--depth', 0, 10), direction: o.direction, relation_types: o.relation?.join(',') })}`,
        );
        if (out.json) return out.data(data);
        for (const e of data.entities)
          out.out(
            `${'  '.repeat(e.depth)}${e.name} (${e.entityType})${e.observations.length ? `: ${truncate(e.observations.join('; '), 100)}` : ''}`,
          );
        for (const r of data.relations) out.out(`  ${r.from} --${r.relationType}--> ${r.to}`);
        return;
      }
      const data = await client.get<{ entities: EntityJson[]; relations: RelationJson[] }>(
        `/api/v1/memory/entities/${encodeURIComponent(name)}${qs({ scope: o.scope })}`,
      );
      if (out.json) return out.data(data);
      for (const e of data.entities) {
        out.out(`${e.name} (${e.entityType}) in ${e.scope}, updated ${e.updated_at}`);
        for (const ob of e.observations) out.out(`  - ${ob}`);
        if (Object.keys(e.metadata).length > 0) out.out(`  metadata: ${JSON.stringify(e.metadata)}`);
      }
      if (data.relations.length > 0) out.out('relations:');
      for (const r of data.relations) out.out(`  ${r.from} --${r.relationType}--> ${r.to} (${r.scope})`);
    });
}

/** `caxton memory export`. */
function registerMemoryExport(memory: Command, ctx: CliContext): void {
  memory
    .command('export')
    .description("export as versioned JSON (default) or the MCP reference server's JSONL (one scope)")
    .option('--scope <scope>', `${SCOPE_HELP} (default: every scope; required for JSONL)`)
    .option('--format <format>', 'json or jsonl', 'json')
    .option('--out <file>', 'write to this file instead of stdout')
    .action(async (o: { scope?: string; format: string; out?: string }) => {
      const out = ctx.output();
      if (o.format !== 'json' && o.format !== 'jsonl')
        throw usageError(`--format expects json or jsonl, got "${o.format}"`);
      if (o.format === 'jsonl' && o.scope === undefined)
        throw usageError('a JSONL export covers one scope: give --scope');
      const path = `/api/v1/memory/export${qs({ scope: o.scope, format: o.format })}`;
      let text: string;
      if (o.format === 'json') text = `${JSON.stringify(await ctx.client().get<unknown>(path), null, 2)}\n`;
      else {
        // JSONL is not one JSON document: read it as text (errors still come as JSON envelopes).
        const client = ctx.client();
        const res = await fetch(client.base + path, {
          headers: client.headers(),
          signal: AbortSignal.timeout(300_000),
        }).catch(() => undefined);
        if (!res) return void (await client.get(path)); // reports the unreachable server the usual way
        text = await res.text();
        if (res.status >= 400) {
          const body = JSON.parse(text) as ApiErrorBody;
          throw new ApiError(res.status, body);
        }
      }
      if (o.out === undefined) return void process.stdout.write(text);
      // An export holds every memory of the scopes read: the exporter's alone, like the store.
      writePrivateFileSync(o.out, text);
      if (out.json) return out.data({ file: o.out, bytes: Buffer.byteLength(text), format: o.format });
      out.out(`exported to ${o.out} (${Buffer.byteLength(text)} bytes, ${o.format})`);
    });
}

/** `caxton memory import`. */
function registerMemoryImport(memory: Command, ctx: CliContext): void {
  memory
    .command('import')
    .description("import versioned JSON or the reference server's JSONL (all or nothing; existing entities are merged)")
    .argument('<file>', 'the file to import ("-" for stdin)')
    .option('--scope <scope>', `${SCOPE_HELP} (required for JSONL; moves a JSON import into one scope)`)
    .option('--format <format>', 'json or jsonl (default: detected)')
    .action(async (file: string, o: { scope?: string; format?: string }) => {
      const out = ctx.output();
      if (o.format !== undefined && o.format !== 'json' && o.format !== 'jsonl')
        throw usageError(`--format expects json or jsonl, got "${o.format}"`);
      let text: string;
      try {
        text = readFileSync(file === '-' ? 0 : file, 'utf8');
      } catch (e) {
        throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
      }
      const path = `/api/v1/memory/import${qs({ scope: o.scope, format: o.format })}`;
      let data: ImportAnswer;
      if (out.json)
        data = (
          await ctx.client().request<ImportAnswer>('POST', path, {
            body: text,
            contentType: 'application/x-ndjson',
            timeoutMs: 3_600_000,
          })
        ).data;
      else {
        out.err(`importing ${Buffer.byteLength(text)} bytes (every entity is embedded)...`);
        data = await streamImport(ctx.client(), path, text);
      }
      if (out.json) return out.data(data);
      out.out(
        `imported ${data.format}: ${data.entities_created} entities created, ${data.entities_updated} updated, ${data.relations_created} relations created`,
      );
    });
}

/** `caxton memory stats`. */
function registerMemoryStats(memory: Command, ctx: CliContext): void {
  memory
    .command('stats')
    .description('entity, relation and observation counts per scope; the embedding model')
    .action(async () => {
      const out = ctx.output();
      const s = await ctx.client().get<StatsJson>('/api/v1/memory/stats');
      if (out.json) return out.data(s);
      out.out(`${s.entities} entities, ${s.relations} relations, ${s.observations} observations`);
      out.out(
        `embedding: ${s.embedding ? `${s.embedding.model} (${s.embedding.dimensions} dimensions, ${s.embedding.indexed} indexed)` : 'not loaded yet'}`,
      );
      if (s.database_bytes !== undefined) out.out(`database: ${(s.database_bytes / 1024 / 1024).toFixed(1)} MiB`);
      const rows = Object.entries(s.by_scope).map(([scope, c]) => [scope, String(c.entities), String(c.relations)]);
      if (rows.length > 0) out.out(table(['SCOPE', 'ENTITIES', 'RELATIONS'], rows));
    });
}
