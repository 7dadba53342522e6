/** Built-in `csv_parser`: RFC 4180 CSV → JSON rows, malformed input reported with its line. */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltin, type Loaded } from './helpers.js';

let csv: Loaded;
beforeAll(() => {
  csv = loadBuiltin('csv_parser');
});

const failure = async (args: Record<string, unknown>) => {
  const r = await csv.call('parse', args);
  expect(r.is_error).toBe(true);
  return r.content;
};

describe('csv_parser', () => {
  it('declares one tool, parse', () => {
    expect(csv.server.tools.map((t) => t.name)).toEqual(['csv_parser.parse']);
    expect(csv.server.warnings).toEqual([]);
  });

  it('parses rows into objects keyed by the header: quotes, doubled quotes, CRLF, embedded line breaks', async () => {
    const text = 'name,city,note\r\nAda,"London, UK","said ""hi"""\r\nBo,Paris,"two\nlines"\r\n';
    expect(await csv.json('parse', { text })).toEqual({
      columns: ['name', 'city', 'note'],
      rows: [
        { name: 'Ada', city: 'London, UK', note: 'said "hi"' },
        { name: 'Bo', city: 'Paris', note: 'two\nlines' },
      ],
      row_count: 2,
      truncated: false,
    });
  });

  it('arrays without a header, other delimiters, type inference, trimming, blank lines and max_rows', async () => {
    expect(await csv.json('parse', { text: 'a;1\nb;2\n', delimiter: ';', header: false })).toEqual({
      rows: [
        ['a', '1'],
        ['b', '2'],
      ],
      row_count: 2,
      truncated: false,
    });
    expect(await csv.json('parse', { text: 'x\ty\n1\t2\n', delimiter: 'tab', output: 'arrays' })).toEqual({
      columns: ['x', 'y'],
      rows: [['1', '2']],
      row_count: 1,
      truncated: false,
    });
    expect((await csv.json('parse', { text: 'n,b,e,s\n-1.5e3,TRUE,,x\n', infer_types: true })).rows).toEqual([
      { n: -1500, b: true, e: null, s: 'x' },
    ]);
    expect((await csv.json('parse', { text: 'a , b\n  1 ,2 \n\n3,4\n', trim: true })).rows).toEqual([
      { a: '1', b: '2' },
      { a: '3', b: '4' },
    ]);
    expect(await csv.json('parse', { text: 'a\n1\n2\n3\n', max_rows: 2 })).toEqual({
      columns: ['a'],
      rows: [{ a: '1' }, { a: '2' }],
      row_count: 2,
      truncated: true,
    });
    expect((await csv.json('parse', { text: 'a,a,\n1,2,3\n' })).columns).toEqual(['a', 'a_2', 'column_3']);
    expect(
      (await csv.json('parse', { text: 'a,b\n1\n1,2,3\n', relax_column_count: true, output: 'arrays' })).rows,
    ).toEqual([['1'], ['1', '2', '3']]);
    expect(await csv.json('parse', { text: '' })).toEqual({ rows: [], row_count: 0, truncated: false });
  });

  it('a 1 MB CSV parses in linear time, well inside the fuel budget', () => {
    let text = 'id,name,amount,note\n';
    for (let i = 0; i < 25_000; i++) text += `${i},name ${i},${i * 1.5},"a, ""quoted"" note"\n`;
    const r = csv.server.callRaw('parse', new TextEncoder().encode(JSON.stringify({ text, infer_types: true })));
    expect(r.outcome).toBe('ok');
    expect(r.fuel_used).toBeLessThan(100_000_000); // was over 1e9 (fuel_exhausted) when output was built from an array of pieces
    const out = JSON.parse(new TextDecoder().decode(r.output)) as {
      row_count: number;
      rows: Record<string, unknown>[];
    };
    expect(out.row_count).toBe(25_000);
    expect(out.rows[24_999]).toEqual({ id: 24999, name: 'name 24999', amount: 37498.5, note: 'a, "quoted" note' });
  });

  it('malformed CSV is reported with its line and column', async () => {
    expect(await failure({ text: 'a,b\n1,2\n3,4,5\n' })).toBe(
      'tool "csv_parser.parse" failed (error): malformed CSV: line 3 has 3 fields, but the header (line 1) has 2 (quote fields that contain the delimiter, or pass "relax_column_count": true)',
    );
    expect(await failure({ text: 'a,b\n1,"open\n' })).toMatch(
      /\(error\): malformed CSV: line 2: unterminated quoted field/,
    );
    expect(await failure({ text: 'a,b\n1,x"y"\n' })).toMatch(
      /\(error\): malformed CSV: line 2, column 4: a quote inside an unquoted field/,
    );
    expect(await failure({ text: 'a,b\n"1"x,2\n' })).toMatch(
      /\(error\): malformed CSV: line 2, column 4: unexpected character 'x' after the closing quote/,
    );
  });

  it('malformed arguments get a clear error naming the field', async () => {
    expect(await failure({})).toMatch(/\(invalid_input\): .*must have required property 'text'/);
    expect(await failure({ text: 5 })).toMatch(/\(invalid_input\): .*\/text must be string/);
    expect(await failure({ text: 'a', output: 'xml' })).toMatch(
      /\(invalid_input\): .*\/output must be equal to one of the allowed values \("objects", "arrays"\)/,
    );
    expect(await failure({ text: 'a', max_rows: -1 })).toMatch(/\(invalid_input\): .*\/max_rows must be >= 0/);
    expect(await failure({ text: 'a', delimter: ';' })).toMatch(
      /\(invalid_input\): .*must NOT have additional properties: "delimter"/,
    );
    expect(await failure({ text: 'a', delimiter: ';;' })).toBe(
      'tool "csv_parser.parse" failed (error): "delimiter" must be a single character (e.g. ",", ";", "\\t" or "|"), not ";;"',
    );
    expect(await failure({ text: 'a', delimiter: '"' })).toMatch(
      /\(error\): "delimiter" cannot be a quote or a line break/,
    );
    expect(await failure({ text: 'a', header: false, output: 'objects' })).toMatch(
      /\(error\): "output": "objects" needs a header row/,
    );
  });
});
