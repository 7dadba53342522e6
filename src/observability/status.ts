import type { Metrics } from './metrics.js';

/**
 * Counters sampled over time, so `GET /api/v1/status/overview` (and `caxton status`) can report
 * rates — executions, messages and errors per second — without Prometheus. One sample a second
 * (configurable), the last five minutes kept.
 */
export interface CounterSample {
  /** ms since epoch. */
  t: number;
  executions: number;
  execution_errors: number;
  messages: number;
  message_failures: number;
  errors: number;
  http_requests: number;
}

export interface Rates {
  /** Seconds actually covered (less than asked right after start). */
  window_seconds: number;
  executions_per_second: number;
  messages_per_second: number;
  errors_per_second: number;
  /** Failed executions / executions in the window; null without executions. */
  execution_error_rate: number | null;
  /** Failed or dead-lettered deliveries / processed deliveries in the window; null without any. */
  message_error_rate: number | null;
  http_requests_per_second: number;
}

type Values = { values: { value: number; labels: Record<string, string | number> }[] };

const sum = (m: Values, keep: (labels: Record<string, string | number>) => boolean = () => true): number => {
  let n = 0;
  for (const v of m.values) if (keep(v.labels)) n += v.value;
  return n;
};

export class StatusSampler {
  readonly #metrics: Metrics;
  readonly #samples: CounterSample[] = [];
  readonly #keep: number;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(metrics: Metrics, opts: { intervalMs?: number; keepMs?: number } = {}) {
    this.#metrics = metrics;
    this.#intervalMs = opts.intervalMs ?? 1000;
    this.#keep = Math.max(2, Math.ceil((opts.keepMs ?? 300_000) / this.#intervalMs));
  }

  start(): void {
    if (this.#timer) return;
    void this.#tick();
    this.#timer = setInterval(() => void this.#tick(), this.#intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #tick(): Promise<void> {
    const s = await this.sample();
    this.#samples.push(s);
    if (this.#samples.length > this.#keep) this.#samples.splice(0, this.#samples.length - this.#keep);
  }

  /** The counters now. */
  async sample(): Promise<CounterSample> {
    const m = this.#metrics;
    const [ex, msg, err, http] = (await Promise.all([
      m.agentExecutions.get(),
      m.messagesProcessed.get(),
      m.errors.get(),
      m.httpRequests.get(),
    ])) as Values[];
    return {
      t: Date.now(),
      executions: sum(ex!),
      execution_errors: sum(ex!, (l) => l.status !== 'ok'),
      // A retried delivery is processed again later: count each message once, when it is settled.
      messages: sum(msg!, (l) => l.status !== 'retried' && l.status !== 'stopped'),
      message_failures: sum(msg!, (l) => l.status === 'failed' || l.status === 'dead_letter'),
      errors: sum(err!),
      http_requests: sum(http!),
    };
  }

  /** Rates over (about) the last `windowMs`, from the stored sample closest to that age to now. */
  async rates(windowMs = 10_000): Promise<{ now: CounterSample; rates: Rates }> {
    const now = await this.sample();
    let base: CounterSample | undefined;
    for (const s of this.#samples) {
      if (now.t - s.t <= windowMs + this.#intervalMs / 2) {
        base = s;
        break;
      }
    }
    base ??= this.#samples.at(-1);
    const dt = base ? (now.t - base.t) / 1000 : 0;
    const per = (k: keyof CounterSample) => (base && dt > 0 ? round((now[k] - base[k]) / dt) : 0);
    const ratio = (bad: keyof CounterSample, all: keyof CounterSample) => {
      const d = base ? now[all] - base[all] : 0;
      return d > 0 ? round((now[bad] - base![bad]) / d) : null;
    };
    return {
      now,
      rates: {
        window_seconds: round(dt),
        executions_per_second: per('executions'),
        messages_per_second: per('messages'),
        errors_per_second: per('errors'),
        execution_error_rate: ratio('execution_errors', 'executions'),
        message_error_rate: ratio('message_failures', 'messages'),
        http_requests_per_second: per('http_requests'),
      },
    };
  }
}

const round = (n: number) => Math.round(n * 1000) / 1000;
