import { describe, expect, it } from 'vitest';
import { formatIssue } from '../../../src/shared/index.js';
import { DEFAULT_TOOL_LIMITS, parseToolManifest, parseToolManifestOrThrow } from '../../../src/tools/servers/index.js';

const FILE = 'pkg/caxton-tool.toml';
const GOOD = `name = "weather"
version = "1.2.0"
description = "Weather lookups"
module = "build/weather.wasm"

[[tools]]
name = "forecast"
description = "Forecast for a city"
export = "get_forecast"
input_schema = { type = "object", properties = { city = { type = "string" } }, required = ["city"] }

[[tools]]
name = "now"
description = "Current conditions"

[limits]
memory = "8MiB"
fuel = 5_000_000
timeout = "1500ms"
max_output = "256KiB"

[permissions]
allowed_hosts = ["api.weather.example", "*.cdn.example"]

[permissions.paths]
"/cache/" = "write"

[config]
api_key = { description = "API key", required = true }
units = "metric"
`;

describe('parseToolManifest', () => {
  it('parses a full manifest with defaults filled in', () => {
    const r = parseToolManifest(GOOD, FILE);
    if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
    expect(r.warnings).toEqual([]);
    const m = r.manifest;
    expect(m).toMatchObject({ name: 'weather', version: '1.2.0', module: 'build/weather.wasm' });
    expect(m.tools.map((t) => [t.name, t.export])).toEqual([
      ['forecast', 'get_forecast'],
      ['now', 'now'],
    ]);
    expect(m.tools[1]!.input_schema).toEqual({ type: 'object' });
    expect(m.limits).toEqual({
      ...DEFAULT_TOOL_LIMITS,
      memory: 8 * 1024 * 1024,
      fuel: 5_000_000,
      timeout_ms: 1500,
      max_output: 256 * 1024,
    });
    expect(m.permissions).toEqual({
      allowed_hosts: ['api.weather.example', '*.cdn.example'],
      paths: { '/cache': 'write' },
      databases: [],
    });
    expect(m.config).toEqual({
      api_key: { description: 'API key', required: true },
      units: { default: 'metric', required: false },
    });
  });

  it('defaults the module to <name>.wasm', () => {
    const r = parseToolManifestOrThrow(
      'name = "x"\nversion = "0.1.0"\ndescription = "d"\n[[tools]]\nname = "t"\ndescription = "d"\n',
    );
    expect(r.manifest.module).toBe('x.wasm');
  });

  it('names file, line, column and field for each error', () => {
    const r = parseToolManifest(
      `name = "Bad.Name"\nversion = "one"\ndescription = "d"\n\n[limits]\nmemory = "lots"\nfuel = -1\n\n[[tools]]\nname = "t"\n`,
      FILE,
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const by = Object.fromEntries(r.errors.map((e) => [e.field, e]));
    expect(by.name).toMatchObject({ file: FILE, line: 1, column: 1, code: 'invalid_value' });
    expect(by.name!.message).toMatch(/lower-case name/);
    expect(by.version).toMatchObject({ line: 2, message: expect.stringMatching(/semantic version/) });
    expect(by['limits.memory']).toMatchObject({ line: 6, message: expect.stringMatching(/expected a size/) });
    expect(by['limits.fuel']).toMatchObject({ line: 7 });
    expect(by['tools.0.description']).toMatchObject({
      code: 'missing_field',
      message: 'required field "tools.0.description" is missing',
    });
    expect(formatIssue(by.version!)).toMatch(/^pkg\/caxton-tool\.toml:2:1: error: /);
  });

  it('reports TOML syntax errors with their position', () => {
    const r = parseToolManifest('name = "x\nversion = 1', FILE);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors[0]).toMatchObject({ code: 'toml_syntax', file: FILE, line: 1 });
  });

  it('warns about unknown keys with a suggestion', () => {
    const r = parseToolManifest(
      GOOD.replace('max_output', 'max_outptu').replace('[permissions]\n', '[permissions]\nallowed_host = []\n'),
      FILE,
    );
    expect(r.ok).toBe(true);
    expect(r.warnings.map((w) => [w.field, w.suggestion])).toEqual([
      ['limits.max_outptu', 'did you mean "max_output"?'],
      ['permissions.allowed_host', 'did you mean "allowed_hosts"?'],
    ]);
  });

  it('refuses invalid schemas, non-object inputs, duplicate tools, bad paths and hosts', () => {
    const r = parseToolManifest(
      `name = "x"\nversion = "1.0.0"\ndescription = "d"\nmodule = "../escape.wasm"\n` +
        `[[tools]]\nname = "a"\ndescription = "d"\ninput_schema = { type = "string" }\n` +
        `[[tools]]\nname = "a"\ndescription = "d"\noutput_schema = { type = 12 }\n` +
        `[permissions]\nallowed_hosts = ["http://x.com/"]\n[permissions.paths]\n"data" = "read"\n`,
      FILE,
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const msgs = r.errors.map((e) => `${e.field}: ${e.message}`);
    expect(msgs).toEqual([expect.stringMatching(/^permissions\.allowed_hosts\.0: expected a host name/)]);
    const r2 = parseToolManifest(
      `name = "x"\nversion = "1.0.0"\ndescription = "d"\nmodule = "../escape.wasm"\n` +
        `[[tools]]\nname = "a"\ndescription = "d"\ninput_schema = { type = "string" }\n` +
        `[[tools]]\nname = "a"\ndescription = "d"\noutput_schema = { type = 12 }\n` +
        `[permissions.paths]\n"data" = "read"\n`,
      FILE,
    );
    expect(r2.ok).toBe(false);
    if (r2.ok) return;
    expect(r2.errors.map((e) => `${e.field}: ${e.message}`)).toEqual([
      expect.stringMatching(/^tools\.0\.input_schema: the input schema must describe an object/),
      expect.stringMatching(/^tools\.1\.name: tool "a" is declared twice/),
      expect.stringMatching(/^tools\.1\.output_schema: not a valid JSON schema/),
      expect.stringMatching(/^permissions\.paths\.data: "data" is not a valid guest path/),
      expect.stringMatching(/^module: module "\.\.\/escape\.wasm" must be a path inside the package directory/),
    ]);
  });

  it('parseToolManifestOrThrow lists every error', () => {
    expect(() => parseToolManifestOrThrow('name = 1\n', FILE)).toThrow(
      /invalid tool manifest:\npkg\/caxton-tool\.toml:1:1: error: .*\[name\]/,
    );
  });
});
