/**
 * The Tools page in a real browser: every tool source with its state, a tool called from the form
 * generated from its input schema (result shown, the call in the audit log), invalid JSON in an
 * untyped field shown next to the field with its line and column and nothing called, the server's
 * refusal shown next to the field it names, audit filters in the URL, and a key without tools:call
 * (or without tools:read) told which permission it lacks; going from one tool source, or one
 * run, to another shows nothing of the previous one under the next one's heading while it loads.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http } from '../helpers/http.js';
import { bearer } from '../helpers/keys.js';
import { hasSystem } from '../helpers/system.js';
import { removeTempDirs } from '../helpers/tmp.js';
import {
  consoleTimeouts,
  expectAccessible,
  holdRequests,
  launchBrowser,
  openPage,
  screenshot,
  signIn,
  startConsoleServer,
  WIDTHS,
  type ConsoleServer,
} from './harness.js';

consoleTimeouts();

describe.skipIf(!hasSystem('chromium'))('web console: tools (chromium)', () => {
  let cs: ConsoleServer;
  let browser: Browser;
  beforeAll(async () => {
    // An MCP server that cannot be reached (nothing listens on port 9 of loopback): listed with its state and error.
    [cs, browser] = await Promise.all([
      startConsoleServer({ toml: '\n[mcp_servers.unreachable]\nurl = "http://127.0.0.1:9/mcp"\ntimeout = "1s"\n' }),
      launchBrowser(),
    ]);
  });
  afterAll(async () => {
    await browser?.close();
    await cs?.close();
    removeTempDirs();
  });

  /** The audit records of json_query calls, through the API. */
  const audited = async (): Promise<{ outcome: string }[]> => {
    const r = await http<{ records: { outcome: string }[] }>(cs.url, 'GET', '/api/v1/tools/audit?server=json_query', {
      headers: bearer(cs.admin),
    });
    expect(r.status, r.text).toBe(200);
    return r.json.records;
  };

  it('lists every tool source with its kind and state, and filters the audit log from the URL', async () => {
    const calc = await http(cs.url, 'POST', '/api/v1/tools/builtin/calculator/call', {
      body: JSON.stringify({ args: { expression: '6*7' } }),
      contentType: 'application/json',
      headers: bearer(cs.admin),
    });
    expect(calc.status, calc.text).toBe(200);
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/tools');
      const sources = page.getByTestId('tool-sources');
      await sources.waitFor();
      const row = sources.getByRole('row', { name: /json_query/ });
      expect(await row.textContent()).toContain('wasm');
      expect(await row.textContent()).toContain('loaded');
      expect(await sources.getByRole('row', { name: /^builtin/ }).textContent()).toContain('builtin');
      // The MCP server is a source too, not ready, and listed among the MCP servers with its target.
      const mcpRow = sources.getByRole('row', { name: /^unreachable/ });
      expect(await mcpRow.textContent()).toContain('mcp');
      expect(await mcpRow.textContent()).not.toContain('ready');
      const mcp = page.getByTestId('mcp-servers');
      await mcp.waitFor();
      expect(await mcp.textContent()).toContain('http http://127.0.0.1:9/mcp');
      // The calculator call made through the API is in the audit log.
      await page.getByTestId('audit-row').first().waitFor();
      expect(await page.getByTestId('audit').textContent()).toContain('calculator');
      // A filter goes into the URL and narrows the log: no json_query call yet.
      await page.getByLabel('Tool', { exact: true }).fill('json_query.*');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.getByTestId('audit-empty').waitFor();
      expect(new URL(page.url()).searchParams.get('tool')).toBe('json_query.*');
      await expectAccessible(page, 'tools');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('calls a tool from the form generated from its schema and shows the result; the call is audited', async () => {
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/tools/json_query');
      await page.getByRole('heading', { name: 'json_query', level: 1 }).waitFor();
      await page.locator('summary', { hasText: 'Call json_query.query' }).click(); // the disclosure
      const form = page.getByRole('form', { name: 'Call json_query.query' });
      // Typed fields are inputs (string, boolean as a choice, integer), the untyped document a JSON text area.
      expect(await form.getByLabel('query (required)').evaluate((e) => e.tagName)).toBe('INPUT');
      expect(await form.getByLabel('paths').evaluate((e) => e.tagName)).toBe('SELECT');
      expect(await form.getByLabel('document').evaluate((e) => e.tagName)).toBe('TEXTAREA');
      await form.getByLabel('query (required)').fill('$.store.book[*].title');
      await form.getByLabel('document').fill('{"store": {"book": [{"title": "Sayings"}, {"title": "Moby Dick"}]}}');
      await form.getByRole('button', { name: 'Call json_query.query' }).click();
      const result = form.getByTestId('call-result');
      await result.waitFor();
      expect(await result.textContent()).toContain('OK');
      expect(await result.textContent()).toContain('Moby Dick');
      expect((await audited()).map((r) => r.outcome)).toEqual(['ok']);
      // The page's own audit log shows it too.
      await page.getByTestId('audit-row').first().waitFor();
      await expectAccessible(page, 'tool source with its call form');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('invalid JSON in an object field is shown next to it with its line and column, and nothing is called', async () => {
    const before = (await audited()).length;
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/tools/json_query');
      await page.locator('summary', { hasText: 'Call json_query.query' }).click();
      const form = page.getByRole('form', { name: 'Call json_query.query' });
      await form.getByLabel('query (required)').fill('$.a');
      const doc = form.getByLabel('document');
      await doc.fill('{\n  "a": 1,\n  "b": \n}');
      await form.getByRole('button', { name: 'Call json_query.query' }).click();
      const err = form.getByTestId('field-error');
      await err.waitFor();
      const text = (await err.textContent()) ?? '';
      expect(text).toContain('invalid JSON: line 4, column 1: expected a value');
      expect(await doc.getAttribute('aria-invalid')).toBe('true');
      // The error is tied to the field for assistive technology.
      expect(await doc.getAttribute('aria-describedby')).toContain((await err.getAttribute('id'))!);
      expect(await form.getByTestId('call-result').count()).toBe(0);
      expect((await audited()).length).toBe(before);

      // As JSON: an array is not an argument object; the server refuses and names the field.
      await form.getByRole('button', { name: 'Edit as JSON' }).click();
      const args = form.getByLabel('Arguments (JSON object)');
      await args.fill('[1, 2]');
      await form.getByRole('button', { name: 'Call json_query.query' }).click();
      const refusal = form.getByTestId('field-error');
      await refusal.waitFor();
      expect(await refusal.textContent()).toContain('expected a JSON object of arguments');
      expect(await args.getAttribute('aria-invalid')).toBe('true');
      // And text that is not JSON at all is located before anything is sent.
      await args.fill('{"query": "$.a",\n "document": {"a": 1}');
      await form.getByRole('button', { name: 'Call json_query.query' }).click();
      await expect
        .poll(async () => form.getByTestId('field-error').textContent())
        .toMatch(/invalid JSON: line 2, column \d+/);
      expect((await audited()).length).toBe(before);
      await expectAccessible(page, 'call form with a located error');

      // An array-typed field (chart_generator.render's labels) is a JSON text area too, checked the same way.
      const charts = async () =>
        (
          await http<{ records: unknown[] }>(cs.url, 'GET', '/api/v1/tools/audit?server=chart_generator', {
            headers: bearer(cs.admin),
          })
        ).json.records.length;
      const chartsBefore = await charts();
      await page.goto(`${cs.url}/ui/tools/chart_generator`);
      await page.locator('summary', { hasText: 'Call chart_generator.render' }).click();
      const chart = page.getByRole('form', { name: 'Call chart_generator.render' });
      await chart.getByLabel('type (required)').selectOption('bar');
      const labels = chart.getByLabel('labels');
      expect(await labels.evaluate((e) => e.tagName)).toBe('TEXTAREA');
      await labels.fill('["a", "b",]');
      await chart.getByRole('button', { name: 'Call chart_generator.render' }).click();
      await expect
        .poll(() => chart.getByTestId('field-error').textContent())
        .toBe('invalid JSON: line 1, column 11: expected a value, found "]"');
      expect(await labels.getAttribute('aria-invalid')).toBe('true');
      expect(await chart.getByTestId('call-result').count()).toBe(0);
      expect(await charts()).toBe(chartsBefore);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('a tool that refuses its arguments shows the reason next to the field it names', async () => {
    const { page, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, cs.admin, '/ui/tools/json_query');
      await page.locator('summary', { hasText: 'Call json_query.query' }).click();
      const form = page.getByRole('form', { name: 'Call json_query.query' });
      await form.getByRole('button', { name: 'Edit as JSON' }).click();
      await form.getByLabel('Arguments (JSON object)').fill('{"query": 5}');
      await form.getByRole('button', { name: 'Call json_query.query' }).click();
      await form.getByTestId('call-result').waitFor();
      expect(await form.getByTestId('call-result').textContent()).toContain('invalid_input');
      expect(await form.getByTestId('field-error').textContent()).toContain('/query must be string');
      // In the form, the same refusal sits under the query field.
      await form.getByRole('button', { name: 'Edit as form' }).click();
      await form.getByLabel('query (required)').fill('5');
      await form.getByLabel('max_results').fill('-1');
      await form.getByRole('button', { name: 'Call json_query.query' }).click();
      await form.getByTestId('call-result').waitFor();
      const blamed = form.getByTestId('field-error');
      expect(await blamed.textContent()).toContain('max_results');
      expect(await blamed.getAttribute('id')).toContain('max_results');
      await form.getByLabel('query (required)').fill('$');
      await form.getByLabel('max_results').fill('');
      await form.getByLabel('document').fill('[3]');
      await form.getByRole('button', { name: 'Call json_query.query' }).click();
      await expect.poll(async () => form.getByTestId('call-result').textContent()).toContain('OK');
    } finally {
      await close();
    }
  });

  it('a viewer sees the tools but no call button, told that tools:call is missing; an invoker is told tools:read is', async () => {
    const viewer = await cs.keyFor('viewer');
    const { page, problems, close } = await openPage(browser);
    try {
      await signIn(page, cs.url, viewer, '/ui/tools/json_query');
      await page.getByTestId('no-call').waitFor();
      expect(await page.getByTestId('no-call').textContent()).toContain('tools:call');
      expect(await page.getByRole('button', { name: /^Call / }).count()).toBe(0);
      expect(await page.getByText('Call json_query.query').count()).toBe(0);
      // The API refuses it the same way.
      const r = await http(cs.url, 'POST', '/api/v1/tools/json_query/query/call', {
        body: '{"args":{"query":"$"}}',
        contentType: 'application/json',
        headers: bearer(viewer),
      });
      expect(r.status).toBe(403);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
    const invoker = await cs.keyFor('invoker');
    const other = await openPage(browser);
    try {
      await signIn(other.page, cs.url, invoker, '/ui/tools');
      const alert = other.page.getByRole('alert');
      await alert.waitFor();
      expect(await alert.textContent()).toContain('Your key lacks the permission tools:read');
      expect(
        await other.page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents(),
      ).not.toContain('Tools');
    } finally {
      await other.close();
    }
  });

  it('going from one tool source to another shows nothing of the previous source while the next loads', async () => {
    const calc = await http(cs.url, 'POST', '/api/v1/tools/builtin/calculator/call', {
      body: JSON.stringify({ args: { expression: '2+2' } }),
      contentType: 'application/json',
      headers: bearer(cs.admin),
    });
    expect(calc.status, calc.text).toBe(200);
    const { page, problems, close } = await openPage(browser);
    try {
      // json_query, then the list, then builtin, all through links: the history holds both sources.
      await signIn(page, cs.url, cs.admin, '/ui/tools/json_query');
      await page.getByRole('heading', { name: 'json_query', level: 1 }).waitFor();
      await page.getByRole('link', { name: '← Tools' }).click();
      await page.getByTestId('tool-sources').getByRole('link', { name: 'builtin', exact: true }).click();
      await page.getByRole('heading', { name: 'builtin', level: 1 }).waitFor();
      await page.locator('summary', { hasText: /^Call .*calculator$/ }).waitFor();
      await page.getByTestId('audit-row').first().waitFor();
      // Straight back to json_query (two entries back, as the back button's list offers it): the
      // source page stays mounted, and json_query's source and its audit log are held until the
      // page has been read.
      const source = await holdRequests(page, /\/api\/v1\/tools\/json_query(\?|$)/);
      const audit = await holdRequests(page, /\/api\/v1\/tools\/audit\?(.*&)?server=json_query(&|$)/);
      await page.evaluate('history.go(-2)');
      await Promise.all([source.requested, audit.requested]);
      await page.getByRole('heading', { name: 'json_query', level: 1 }).waitFor();
      expect(
        await page.locator('summary', { hasText: /calculator/ }).count(),
        "builtin's calculator form under json_query's heading",
      ).toBe(0);
      expect(await page.locator('article.tool-card').count()).toBe(0);
      expect(await page.locator('summary', { hasText: /^Call / }).count()).toBe(0);
      expect(await page.locator('button', { hasText: /^Call / }).count()).toBe(0);
      expect(await page.getByTestId('audit-row').count()).toBe(0);
      expect(await page.getByRole('status').filter({ hasText: 'Loading json_query' }).count()).toBe(1);
      source.release();
      audit.release();
      // Once json_query's own source has come, its tools are shown, and none of builtin's.
      await page.locator('summary', { hasText: 'Call json_query.query' }).waitFor();
      expect(await page.locator('summary', { hasText: /calculator/ }).count()).toBe(0);
      expect(new URL(page.url()).pathname).toBe('/ui/tools/json_query');
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  it('going from one run to another shows nothing of the previous run while the next loads', async () => {
    const created = await http(cs.url, 'POST', '/api/v1/agents', {
      body: 'name = "adder"\ncapabilities = ["adder"]\ntools = ["calculator"]\nsystem_prompt = "You add."\n',
      contentType: 'application/toml',
      headers: bearer(cs.admin),
    });
    expect(created.status, created.text).toBe(201);
    const invoke = async (request: string): Promise<string> => {
      const r = await http<{ execution_id: string }>(cs.url, 'POST', '/api/v1/agents/adder/invoke', {
        body: JSON.stringify({ request }),
        contentType: 'application/json',
        headers: bearer(cs.admin),
      });
      expect(r.status, r.text).toBe(200);
      return r.json.execution_id;
    };
    const first = await invoke('What is 6 * 7?');
    const second = await invoke('What is 2 + 3?');
    const { page, problems, close } = await openPage(browser);
    try {
      // Each run through its link in the tools' audit log: the history holds both runs.
      await signIn(page, cs.url, cs.admin, '/ui/tools');
      const link = (id: string) => page.locator(`a[href="/ui/runs/${id}"]`);
      // The page's three parts load on their own: a click made while the sources above the audit
      // log still arrive can land where the link was a moment before.
      const loaded = async () => {
        await page.getByTestId('tool-sources').waitFor();
        await page.getByTestId('mcp-servers').or(page.getByText('No MCP server is mounted')).waitFor();
        await page.getByTestId('audit').waitFor();
      };
      await loaded();
      await link(first).click();
      await page.getByText('The answer is 42.').waitFor();
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tools' }).click();
      await loaded();
      await link(second).click();
      await page.getByRole('heading', { name: `Run ${second}`, level: 1 }).waitFor();
      await page.getByText('The answer is 5.').waitFor();
      await page.locator('details.tool-call').first().waitFor();
      // Straight back to the first run: the run page stays mounted, and the first run's record is
      // held until the page has been read.
      const hold = await holdRequests(page, new RegExp(`/api/v1/executions/${first}(\\?|$)`));
      await page.evaluate('history.go(-2)');
      await hold.requested;
      await page.getByRole('heading', { name: `Run ${first}`, level: 1 }).waitFor();
      expect(
        await page.getByText('The answer is 5.').count(),
        "the second run's answer under the first run's heading",
      ).toBe(0);
      expect(await page.getByTestId('run-status').count()).toBe(0);
      expect(await page.locator('details.tool-call').count()).toBe(0);
      expect(await page.getByTestId('waterfall-row').count()).toBe(0);
      expect(await page.getByText(/The answer is|What is/).count()).toBe(0);
      expect(await page.getByRole('status').filter({ hasText: 'Loading the run' }).count()).toBe(1);
      hold.release();
      await page.getByText('The answer is 42.').waitFor();
      expect(await page.getByText('The answer is 5.').count()).toBe(0);
      expect(new URL(page.url()).pathname).toBe(`/ui/runs/${first}`);
      expect(problems).toEqual([]);
    } finally {
      await close();
    }
  });

  for (const width of WIDTHS) {
    it(`the tools pages at ${width} px`, async () => {
      // A call in the audit log, whether or not the tests above ran.
      const calc = await http(cs.url, 'POST', '/api/v1/tools/builtin/calculator/call', {
        body: JSON.stringify({ args: { expression: '1+1' } }),
        contentType: 'application/json',
        headers: bearer(cs.admin),
      });
      expect(calc.status, calc.text).toBe(200);
      const { page, problems, close } = await openPage(browser, width);
      try {
        await signIn(page, cs.url, cs.admin, '/ui/tools');
        await page.getByTestId('audit-row').first().waitFor();
        await expectAccessible(page, `tools at ${width}`);
        await screenshot(page, 'tools');
        await page.goto(`${cs.url}/ui/tools/json_query`);
        await page.locator('summary', { hasText: 'Call json_query.query' }).click();
        await page.getByLabel('query (required)').fill('$.a');
        await page.getByLabel('document').fill('{"a": [1, 2, 3]}');
        await page.getByRole('button', { name: 'Call json_query.query' }).click();
        await page.getByTestId('call-result').waitFor();
        await expectAccessible(page, `tool source at ${width}`);
        await screenshot(page, 'tool-call');
        expect(problems).toEqual([]);
      } finally {
        await close();
      }
    });
  }
});
