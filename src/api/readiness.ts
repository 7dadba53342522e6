import { describeError } from '../shared/errors.js';
import { scrubSecrets } from '../shared/secrets.js';

/**
 * One outside dependency a node needs to do its work (PostgreSQL behind memory, NATS behind a
 * cluster): `check` resolves when it answers and rejects, with the reason, when it does not.
 * Components contribute them (src/server/components/component.ts); GET /ready runs them.
 */
export interface ReadinessCheck {
  /** Names the dependency in /ready and /api/v1/status, e.g. "memory-postgresql". */
  readonly name: string;
  /** Listed by /ready and the status only while it fails (the node's own data directory, always there on a healthy node). */
  readonly quiet?: boolean;
  check(signal: AbortSignal): Promise<void>;
}

/**
 * Something in the configuration that will make work fail although the node serves (a provider
 * with no key, a missing script file): reported as "degraded", never by /ready (src/server/config-problems.ts).
 */
export interface ConfigProblem {
  /** The configuration field at fault, e.g. "llm.providers.openai". */
  name: string;
  problem: string;
  /** What to change, in which process, and whether a restart is needed. */
  fix: string;
}

export interface DependencyState {
  name: string;
  ok: boolean;
  /** Why it failed (authenticated status only: /ready is public and an error may name hosts). */
  reason?: string;
  /** When it was last checked (ISO time). */
  checked_at: string;
  /** Listed only while it fails (ReadinessCheck.quiet). */
  quiet?: boolean;
}

/** The states /ready and the status list: every failing one, and the ok ones that are not quiet. */
export function listedStates(states: DependencyState[]): DependencyState[] {
  return states.filter((d) => !(d.quiet === true && d.ok));
}

export interface ReadinessOptions {
  /** Longest one check may take before it counts as failed. */
  timeoutMs?: number;
  /** A result is reused this long: a flood of probes runs the checks at most once per period. */
  cacheMs?: number;
  log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

/**
 * The dependency checks behind GET /ready. Checks run together, each bounded by `timeoutMs`; a
 * probe that arrives while they run waits for that run, and a result is reused for `cacheMs`, so
 * load balancers polling every node cost the dependencies one query per period, not one per
 * probe. A dependency turning unavailable or available again is logged once per change.
 */
export class Readiness {
  readonly #checks: ReadinessCheck[] = [];
  readonly #timeoutMs: number;
  readonly #cacheMs: number;
  readonly #log: ReadinessOptions['log'];
  readonly #last = new Map<string, DependencyState>();
  #running: Promise<DependencyState[]> | undefined;
  #at = 0;

  constructor(opts: ReadinessOptions = {}) {
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    this.#cacheMs = opts.cacheMs ?? 1000;
    this.#log = opts.log;
  }

  add(check: ReadinessCheck): void {
    this.#checks.push(check);
  }

  get size(): number {
    return this.#checks.length;
  }

  /**
   * The dependencies' states (a quiet one only while it fails; none: all is well), checked now
   * unless a result younger than `cacheMs` exists.
   */
  async probe(): Promise<DependencyState[]> {
    return listedStates(await this.#probeAll());
  }

  #probeAll(): Promise<DependencyState[]> {
    if (this.#running) return this.#running;
    if (Date.now() - this.#at < this.#cacheMs) return Promise.resolve([...this.#last.values()]);
    const run = this.#run().finally(() => {
      this.#at = Date.now();
      this.#running = undefined;
    });
    this.#running = run;
    return run;
  }

  async #run(): Promise<DependencyState[]> {
    const states = await Promise.all(this.#checks.map((c) => this.#one(c)));
    for (const s of states) {
      const before = this.#last.get(s.name);
      if (!s.ok && before?.ok !== false)
        this.#log?.warn(
          { dependency: s.name, reason: s.reason },
          `${s.name} is unavailable: ${s.reason}; /ready answers 503 until it is back`,
        );
      if (s.ok && before?.ok === false) this.#log?.info({ dependency: s.name }, `${s.name} is available again`);
      this.#last.set(s.name, s);
    }
    return states;
  }

  async #one(c: ReadinessCheck): Promise<DependencyState> {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        ac.abort();
        reject(new Error(`no answer within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
    });
    try {
      await Promise.race([c.check(ac.signal), timeout]);
      return { name: c.name, ok: true, checked_at: new Date().toISOString(), ...(c.quiet && { quiet: true }) };
    } catch (e) {
      return {
        name: c.name,
        ok: false,
        reason: scrubSecrets(describeError(e)),
        checked_at: new Date().toISOString(),
        ...(c.quiet && { quiet: true }),
      };
    } finally {
      clearTimeout(timer);
    }
  }
}
