/**
 * The web console's end-to-end harness: a real server with authentication on and the
 * scripted model, Debian's chromium driven by playwright-core (never a downloaded browser), one
 * browser per test file. Helpers sign in, check a page with axe-core, and save screenshots to
 * docs/console/ when CAXTON_SCREENSHOTS=1 (so an ordinary run leaves the tree clean).
 * docs/console.md, "End-to-end tests".
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect, vi } from 'vitest';
import { DEFAULT_CONSOLE_DIR } from '../../src/api/index.js';
import { adminKeyOf, createKey } from '../helpers/keys.js';
import { startTestServer, type TestServer, type TestServerOptions } from '../helpers/server.js';
import { TEST_CHROMIUM } from '../helpers/system.js';
import { makeTempDir } from '../helpers/tmp.js';

/**
 * How long a page waits for what it should show. The waits are for events, never bounds on how
 * fast they come: in CI the console's server shares two cores and one disk with the other test
 * files, and a commit behind another file's writes can hold an answer for several seconds.
 */
export const PAGE_WAIT_MS = 20_000;

/**
 * expect.poll waits as long as the page's own waits, not vitest's default second: a poll for what
 * a request brings (a filtered list, an entity's observations) outlasts a slow response on a loaded
 * machine. A test gets room for a few such waits. Called at the top of each console test file,
 * before its tests are defined (a test's timeout is fixed when it is defined): vitest resets the
 * config after each file, and a worker keeps this module loaded from one file to the next
 * (`isolate: false`), so a call made on import would reach the first file only.
 */
export function consoleTimeouts(): void {
  vi.setConfig({ expect: { poll: { timeout: PAGE_WAIT_MS } }, testTimeout: 3 * PAGE_WAIT_MS });
}

export const WIDTHS = [390, 1440] as const;

/** The scripted model: arithmetic goes through the calculator tool, anything else is echoed. */
export const REPLIES = `fallback = "ok"

[[rules]]
name = "arithmetic"
match = "\\\\d+\\\\s*[-+*/]\\\\s*\\\\d+"
[[rules.turns]]
tool_calls = [{ name = "calculator", arguments = { expression = "{{request}}" } }]
[[rules.turns]]
content = "The answer is {{tool_result.calculator}}."

[[rules]]
name = "echo"
content = "You asked: {{request}}"
`;

export const CONFIG = `[auth]
enabled = true

[llm]
default_provider = "s"
[llm.providers.s]
type = "scripted"
script = "replies.toml"
`;

export interface ConsoleServer {
  srv: TestServer;
  url: string;
  /** The admin key the server bootstrapped. */
  admin: string;
  /** A new key with this role (created by the admin). */
  keyFor(
    role: 'admin' | 'operator' | 'developer' | 'invoker' | 'viewer',
    scope?: Record<string, unknown>,
  ): Promise<string>;
  close(): Promise<void>;
}

/** A server for the console: authentication on, the scripted model, `agentFiles` in agents/. */
export async function startConsoleServer(
  opts: Pick<TestServerOptions, 'agentFiles'> & {
    toml?: string;
    /** Files beside caxton.toml (name → content), e.g. an issuer's public key. */ files?: Record<string, string>;
  } = {},
): Promise<ConsoleServer> {
  if (!existsSync(join(DEFAULT_CONSOLE_DIR, 'index.html')))
    throw new Error('dist/console is missing: run npm run build (npm test does it first) or npm run build:console');
  const dir = makeTempDir('caxton-console-');
  writeFileSync(join(dir, 'replies.toml'), REPLIES);
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), content);
  const srv = await startTestServer({
    dir,
    toml: CONFIG + (opts.toml ?? ''),
    ...(opts.agentFiles && { agentFiles: opts.agentFiles }),
  });
  const admin = adminKeyOf(srv.dataDir);
  let n = 0;
  return {
    srv,
    url: srv.url,
    admin,
    keyFor: (role, scope = {}) => createKey(srv.url, admin, `console-${role}-${++n}`, { role, ...scope }),
    close: () => srv.close(),
  };
}

/** The id part of an API key (cxk_ID_SECRET; the id is 12 characters and may itself hold "_"). */
export const keyId = (key: string): string => key.slice(4, 16);

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

let shared: Promise<Browser> | undefined;

/**
 * Debian's chromium, headless, for one test file: call in beforeAll, close in afterAll. The test
 * workers outlive a file (ADR 0133), so one chromium per worker serves every file it runs: a
 * launch cost about a second of CPU, twenty times a run. What a file gets is a handle on it that
 * opens contexts (each its own cookies and storage, as a fresh browser's) and whose close() closes
 * the contexts it opened; the chromium goes when the worker does, and is launched again if it
 * died.
 */
async function sharedBrowser(): Promise<Browser> {
  const current = shared;
  if (current) {
    const browser = await current.catch(() => undefined);
    if (browser?.isConnected()) return browser;
    if (shared !== current) return sharedBrowser(); // another caller launched one meanwhile
  }
  shared = chromium.launch({ executablePath: TEST_CHROMIUM, args: ARGS, headless: true });
  return shared;
}

export async function launchBrowser(): Promise<Browser> {
  const real = await sharedBrowser();
  const mine = new Set<BrowserContext>();
  const track = (context: BrowserContext): BrowserContext => {
    mine.add(context);
    context.once('close', () => mine.delete(context));
    return context;
  };
  return new Proxy(real, {
    get(target, key) {
      if (key === 'close')
        return async () => {
          await Promise.all([...mine].map((c) => c.close().catch(() => undefined)));
        };
      if (key === 'contexts') return () => [...mine];
      if (key === 'newContext')
        return async (...args: Parameters<Browser['newContext']>) => track(await target.newContext(...args));
      if (key === 'newPage')
        return async (...args: Parameters<Browser['newPage']>) => {
          const page = await target.newPage(...args);
          track(page.context());
          return page;
        };
      const value = Reflect.get(target, key, target) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export interface ConsolePage {
  page: Page;
  context: BrowserContext;
  /** Content-security-policy violations and uncaught page errors seen so far (none expected). */
  problems: string[];
  close(): Promise<void>;
}

/** A fresh context (its own sessionStorage) at this viewport width. */
export async function openPage(browser: Browser, width: number = 1440): Promise<ConsolePage> {
  const context = await browser.newContext({
    viewport: { width, height: width < 600 ? 844 : 900 },
    deviceScaleFactor: 1,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(PAGE_WAIT_MS);
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text()))
      problems.push(`console: ${m.text()}`);
  });
  return { page, context, problems, close: () => context.close() };
}

/** Opens `path` (below the server's URL) and signs in with `key` through the form. */
export async function signIn(page: Page, url: string, key: string, path = '/ui'): Promise<void> {
  await page.goto(url + path);
  await page.getByLabel('API key or bearer token').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('principal').waitFor();
}

/**
 * Holds the page's requests matching `url` until `release()`: `requested` resolves when the first
 * one is asked, so a test can read what the page shows while its next data is still on the way.
 */
export async function holdRequests(page: Page, url: RegExp): Promise<{ requested: Promise<void>; release(): void }> {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let asked!: () => void;
  const requested = new Promise<void>((r) => (asked = r));
  await page.route(url, async (route) => {
    asked();
    await held;
    await route.continue();
  });
  return { requested, release };
}

const require = createRequire(import.meta.url);
let axeSource: string | undefined;

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** Runs axe-core in the page (evaluated over the DevTools protocol, which the page's CSP does not govern); fails on serious or critical violations. */
export async function expectAccessible(page: Page, label: string): Promise<void> {
  axeSource ??= readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  await page.evaluate(axeSource);
  const violations = (await page.evaluate(
    `axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target })) })))`,
  )) as AxeViolation[];
  const bad = violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  expect(bad, `axe-core on ${label}`).toEqual([]);
}

/** The page fits its viewport's width: nothing makes the whole page scroll sideways (wide tables scroll in their own box). */
export async function expectNoSideScroll(page: Page): Promise<void> {
  const width = page.viewportSize()?.width ?? 0;
  expect(
    await page.evaluate('document.documentElement.scrollWidth'),
    `page wider than ${width} px`,
  ).toBeLessThanOrEqual(width);
}

export const SCREENSHOTS = process.env.CAXTON_SCREENSHOTS === '1';
const SHOTS_DIR = join(import.meta.dirname, '../../docs/console');

/** docs/console/<name>-<width>.png, only with CAXTON_SCREENSHOTS=1 (the committed pictures are made that way). */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  mkdirSync(SHOTS_DIR, { recursive: true });
  const width = page.viewportSize()?.width ?? 0;
  await page.screenshot({
    path: join(SHOTS_DIR, `${name}-${width}.png`),
    fullPage: true,
    animations: 'disabled',
    caret: 'hide',
  });
}
