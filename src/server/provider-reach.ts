import { connect } from 'node:net';
import type { ServerConfig } from '../config/index.js';
import type { ConfigProblem } from '../api/readiness.js';
import { ANTHROPIC_DEFAULT_BASE_URL, anthropicBaseUrl, OPENAI_DEFAULT_BASE_URL } from '../llm/index.js';

/** Longest a connection attempt to the provider may take before it counts as unreachable. */
const CONNECT_TIMEOUT_MS = 3_000;
/** While unreachable, a look at the problems checks again at most this often, so it clears when the provider is back. */
const RECHECK_MS = 5_000;

type Log = { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };

interface Target {
  name: string;
  url: string;
  host: string;
  port: number;
}

/** The default provider's address, or undefined when there is none to reach (no provider, scripted, no default). */
export function defaultProviderTarget(config: ServerConfig): Target | undefined {
  const names = Object.keys(config.llm.providers);
  const name = config.llm.default_provider ?? (names.length === 1 ? names[0] : undefined);
  const p = name === undefined ? undefined : config.llm.providers[name];
  if (name === undefined || p === undefined || p.type === 'scripted') return undefined;
  const url =
    p.type === 'anthropic'
      ? anthropicBaseUrl(p.base_url ?? ANTHROPIC_DEFAULT_BASE_URL)
      : (p.base_url ?? OPENAI_DEFAULT_BASE_URL);
  const u = new URL(url);
  const port = u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  return { name, url, host: u.hostname.replace(/^\[|\]$/g, ''), port };
}

/** Resolves with undefined when a TCP connection to host:port opens, else with why not. */
function tryConnect(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (why: string | undefined) => {
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve(why);
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => done(`no connection within ${CONNECT_TIMEOUT_MS / 1000} s`));
    socket.once('connect', () => done(undefined));
    socket.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

/**
 * Whether the default provider can be reached: every agent that names no provider calls it, so a
 * server whose default provider does not answer serves, but its runs fail. Only a TCP connection
 * is opened (no request, no key, no tokens spent): it is checked at start and again whenever a run
 * fails with an LLM error, and while it is unreachable every look at the problems (GET /health,
 * the status overview) may check again, so the problem clears soon after the provider is back.
 */
export class ProviderReach {
  readonly #target: Target | undefined;
  readonly #log: Log;
  #problem: ConfigProblem | undefined;
  #running: Promise<void> | undefined;
  #at = 0;

  constructor(config: ServerConfig, log: Log) {
    this.#target = defaultProviderTarget(config);
    this.#log = log;
  }

  /** Connects once (a check already running is joined). */
  check(): Promise<void> {
    const t = this.#target;
    if (t === undefined) return Promise.resolve();
    this.#running ??= tryConnect(t.host, t.port)
      .then((why) => {
        const before = this.#problem;
        this.#problem =
          why === undefined
            ? undefined
            : {
                name: `llm.providers.${t.name}`,
                problem: `the default provider "${t.name}" cannot be reached at ${t.url} (${why}): every run on it fails`,
                fix: `start the model server it points at, or correct base_url in [llm.providers.${t.name}] (docs/providers.md) and restart; Caxton checks again when a run fails`,
              };
        // The first check's finding is logged with the other problems when the server is ready.
        const first = this.#at === 0;
        if (this.#problem && !before && !first)
          this.#log.warn(
            { field: this.#problem.name, fix: this.#problem.fix },
            `degraded: ${this.#problem.problem}; fix: ${this.#problem.fix}`,
          );
        if (!this.#problem && before && !first)
          this.#log.info({ provider: t.name }, `the default provider "${t.name}" answers again`);
      })
      .finally(() => {
        this.#at = Date.now();
        this.#running = undefined;
      });
    return this.#running;
  }

  /** The problem, if the last check found one; while one stands, checks again in the background now and then. */
  problems(): ConfigProblem[] {
    if (this.#problem === undefined) return [];
    if (this.#running === undefined && Date.now() - this.#at >= RECHECK_MS) void this.check();
    return [this.#problem];
  }

  /** A run finished: an LLM failure may mean the provider went away, so look again. */
  onRunFinished(status: string): void {
    if (status === 'llm_error' || status === 'timeout') void this.check();
  }
}
