/**
 * ADR 0017 — what scrubbing secrets by value costs. Three configured secrets (an API
 * key, a GitHub token, a database password), every encoding of each in one Aho-Corasick automaton.
 *
 *  1. Throughput of `SecretScrubber.scrub` on a 1 KB log-like line and on 1 MB of near-misses (the
 *     key's first 43 characters, repeated), beside the same-run baseline: one RegExp alternation of
 *     the raw and JSON-escaped secrets, as the logger used before. Target: linear — the near-miss
 *     text costs at most 3× per character what the ordinary one does.
 *  2. Log lines per second through `createLogger` to a discarding stream, with the secrets
 *     registered and (baseline) without: the cost every log line now pays.
 */
import { Writable } from 'node:stream';
import { createLogger } from '../src/observability/index.js';
import { SecretScrubber } from '../src/shared/secrets.js';
import type { Row, Suite, SuiteReport } from './lib/report.js';
import { fmt } from './lib/stats.js';

const SECRETS = [
  'sk-bench-0123456789abcdefghijklmnopqrstuvwxyz012',
  'ghp_abcdefghijklmnopqrstuvwxyz0123456789',
  'pg-password-xyz-12345',
];
const LINE = JSON.stringify({
  level: 'info',
  time: new Date(0).toISOString(),
  service: 'caxton',
  msg: 'request completed',
  url: '/api/v1/agents/x/invoke',
  status: 200,
  text: 'The quick brown fox jumps over the lazy dog. '.repeat(20),
});
const NEAR_MISS = SECRETS[0]!.slice(0, -1).repeat(Math.ceil(1_000_000 / (SECRETS[0]!.length - 1)));
const LOG_LINES = 100_000;

/** ns per character of `fn(text)`, after warming up, over at least `minMs`. */
function nsPerChar(fn: (s: string) => string, text: string, minMs = 300): number {
  for (let i = 0; i < 20; i++) fn(text);
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < minMs) {
    fn(text);
    n++;
  }
  return ((performance.now() - t0) * 1e6) / (n * text.length);
}

function logLinesPerSecond(secrets: string[] | undefined): number {
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const log = createLogger('info', sink as never, secrets ? { secrets } : {});
  const t0 = performance.now();
  for (let i = 0; i < LOG_LINES; i++)
    log.info(
      { url: '/api/v1/agents/x/invoke', status: 200, i },
      'request completed with a reasonably long message text',
    );
  return LOG_LINES / ((performance.now() - t0) / 1000);
}

export const secretsSuite: Suite = {
  name: 'secrets',
  description: 'scrubbing configured secrets by value (ADR 0017)',
  async run(): Promise<SuiteReport> {
    const t0 = performance.now();
    const scrubber = new SecretScrubber(SECRETS);
    const buildMs = performance.now() - t0;
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const regex = new RegExp(
      [...new Set(SECRETS.flatMap((s) => [s, JSON.stringify(s).slice(1, -1)]))].map(esc).join('|'),
      'g',
    );
    const viaRegex = (s: string) => s.replace(regex, '***');
    const viaScrubber = (s: string) => scrubber.scrub(s);
    const lineNs = nsPerChar(viaScrubber, LINE);
    const lineRegexNs = nsPerChar(viaRegex, LINE);
    const missNs = nsPerChar(viaScrubber, NEAR_MISS, 1000);
    const missRegexNs = nsPerChar(viaRegex, NEAR_MISS, 1000);
    // The logger registers secrets process-wide: measure the baseline first.
    const plain = logLinesPerSecond(undefined);
    const scrubbed = logLinesPerSecond(SECRETS);
    const ratio = missNs / lineNs;
    const rows: Row[] = [
      {
        metric: `scrub, ${LINE.length}-char log-like line (ns/char)`,
        value: fmt(lineNs),
        baseline: `${fmt(lineRegexNs)} (RegExp, raw + JSON forms only)`,
      },
      {
        metric: `scrub, ${(NEAR_MISS.length / 1e6).toFixed(1)} M chars of near-misses (ns/char)`,
        value: fmt(missNs),
        baseline: `${fmt(missRegexNs)} (RegExp, raw + JSON forms only)`,
      },
      {
        metric: 'near-miss / ordinary cost per char (linear)',
        value: fmt(ratio),
        baseline: '1',
        target: '≤ 3',
        verdict: ratio <= 3 ? 'pass' : 'fail',
      },
      {
        metric: 'log lines/s through createLogger',
        value: fmt(scrubbed, 0),
        baseline: `${fmt(plain, 0)} (no secrets)`,
      },
      { metric: 'building the automaton (3 secrets, every encoding), ms', value: fmt(buildMs), baseline: '-' },
    ];
    return {
      rows,
      raw: {
        build_ms: buildMs,
        line_ns_per_char: lineNs,
        line_regex_ns_per_char: lineRegexNs,
        near_miss_ns_per_char: missNs,
        near_miss_regex_ns_per_char: missRegexNs,
        log_lines_per_s: { plain, scrubbed },
      },
    };
  },
};
