/** Built-in `json_query`: JSONPath over a document given as a JSON value or as JSON text. */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltin, type Loaded } from './helpers.js';

const store = {
  store: {
    book: [
      { category: 'reference', author: 'Nigel Rees', title: 'Sayings of the Century', price: 8.95 },
      { category: 'fiction', author: 'Evelyn Waugh', title: 'Sword of Honour', price: 12.99 },
      { category: 'fiction', author: 'Herman Melville', title: 'Moby Dick', isbn: '0-553-21311-3', price: 8.99 },
      {
        category: 'fiction',
        author: 'J. R. R. Tolkien',
        title: 'The Lord of the Rings',
        isbn: '0-395-19395-8',
        price: 22.99,
      },
    ],
    bicycle: { color: 'red', price: 399 },
  },
};

interface Answer {
  count: number;
  truncated: boolean;
  results: unknown[];
  paths?: string[];
}

let jq: Loaded;
beforeAll(() => {
  jq = loadBuiltin('json_query');
});
const results = async (query: string, document: unknown = store) =>
  (await jq.json<Answer>('query', { query, document })).results;

describe('json_query', () => {
  it('declares one tool, query', () => {
    expect(jq.server.tools.map((t) => t.name)).toEqual(['json_query.query']);
    expect(jq.server.warnings).toEqual([]);
  });

  it('selects members, indexes, slices, wildcards, descendants and unions', async () => {
    expect(await results('$.store.book[*].author')).toEqual([
      'Nigel Rees',
      'Evelyn Waugh',
      'Herman Melville',
      'J. R. R. Tolkien',
    ]);
    expect(await results('$..author')).toHaveLength(4);
    expect(await results('$.store..price')).toEqual([8.95, 12.99, 8.99, 22.99, 399]);
    expect(await results('$..book[2].title')).toEqual(['Moby Dick']);
    expect(await results('$..book[-1].title')).toEqual(['The Lord of the Rings']);
    expect(await results('$..book[0,1].price')).toEqual([8.95, 12.99]);
    expect(await results('$..book[:2].price')).toEqual([8.95, 12.99]);
    expect(await results('$..book[::-1].price')).toEqual([22.99, 8.99, 12.99, 8.95]);
    expect(await results("$['store']['bicycle']")).toEqual([{ color: 'red', price: 399 }]);
    expect(await results('store.bicycle.color')).toEqual(['red']);
    expect(await results('$..*')).toHaveLength(27);
    expect(await results('$.nope')).toEqual([]);
    expect(await results('$', null)).toEqual([null]);
  });

  it('filters with comparisons, existence, negation and boolean operators', async () => {
    expect(await results('$..book[?(@.isbn)].title')).toEqual(['Moby Dick', 'The Lord of the Rings']);
    expect(await results('$..book[?(!@.isbn)].title')).toEqual(['Sayings of the Century', 'Sword of Honour']);
    expect(await results('$..book[?(@.price < 10)].title')).toEqual(['Sayings of the Century', 'Moby Dick']);
    expect(await results('$..book[?(@.price > 10 && @.category == "fiction")].title')).toEqual([
      'Sword of Honour',
      'The Lord of the Rings',
    ]);
    expect(await results("$..book[?(@.author == 'Nigel Rees' || @.price >= 22.99)].price")).toEqual([8.95, 22.99]);
    expect(await results('$..book[?(@.price < $.store.bicycle.price)]')).toHaveLength(4);
  });

  it('reads JSON text, returns normalized paths and honours max_results', async () => {
    const r = await jq.json<Answer>('query', {
      query: '$..price',
      json: JSON.stringify(store),
      paths: true,
      max_results: 2,
    });
    expect(r).toEqual({
      count: 2,
      truncated: true,
      results: [8.95, 12.99],
      paths: ["$['store']['book'][0]['price']", "$['store']['book'][1]['price']"],
    });
    const odd = await jq.json<Answer>('query', { query: '$.*', document: { "it's": 1 }, paths: true });
    expect(odd.paths).toEqual(["$['it\\'s']"]);
  });

  it('malformed input gets a clear error naming the field', async () => {
    const err = async (args: Record<string, unknown>) => {
      const r = await jq.call('query', args);
      expect(r.is_error).toBe(true);
      return r.content;
    };
    expect(await err({ document: {} })).toMatch(/\(invalid_input\): .*must have required property 'query'/);
    expect(await err({ query: 1, document: {} })).toMatch(/\(invalid_input\): .*\/query must be string/);
    expect(await err({ query: '$', json: {} })).toMatch(/\(invalid_input\): .*\/json must be string/);
    expect(await err({ query: '$', document: {}, max_results: -1 })).toMatch(
      /\(invalid_input\): .*\/max_results must be >= 0/,
    );
    expect(await err({ query: '$' })).toBe(
      'tool "json_query.query" failed (error): pass the document as "document" (any JSON value) or as "json" (JSON text)',
    );
    expect(await err({ query: '$', document: {}, json: '{}' })).toMatch(
      /\(error\): give the document either as "document" .* or as "json" .*, not both/,
    );
    expect(await err({ query: '$.a', json: '{"a": [1, 2' })).toBe(
      'tool "json_query.query" failed (error): invalid "json" text: unexpected end of input (expected \',\' or \']\') at line 1, column 12',
    );
    expect(await err({ query: '   ', document: {} })).toMatch(/\(error\): "query" is empty/);
    expect(await err({ query: '$[', document: {} })).toMatch(
      /\(error\): invalid "query" at character 3: expected a name in quotes, an index, a slice/,
    );
    expect(await err({ query: '$..book[?(@.price = 1)]', document: store })).toMatch(
      /invalid "query" at character \d+: use '==' to compare, not '='/,
    );
    expect(await err({ query: '$.a b', document: {} })).toMatch(/invalid "query" at character 5: unexpected 'b'/);
  });
});
