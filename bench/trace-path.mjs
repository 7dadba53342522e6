/**
 * The tracing code of a traced message alone, outside the server: a `message.route` span that
 * hands its context on (stored as JSON, as the message is), then a `message.deliver` span
 * continuing it, with 256 messages between the two as in a burst. Records into the span store and
 * a BatchSpanProcessor whose exporter discards, as the `on` mode of bench/observability.ts does.
 * Prints the bytes allocated per message (a young generation large enough that nothing is
 * collected during the count) and the CPU per message (median and quartiles of 15 reps).
 *
 *   npm run build && node --expose-gc --max-semi-space-size=64 bench/trace-path.mjs [DIST]
 *
 * DIST is a build's `dist` directory (default ./dist): another checkout's build runs the same
 * path, for an A/B of the tracing code without the rest of the server.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { context, SpanKind } from '@opentelemetry/api';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

const dist = pathToFileURL(resolve(process.argv[2] ?? 'dist')).href;
const { SpanRecorder } = await import(`${dist}/observability/span-recorder.js`);
const { SpanStore } = await import(`${dist}/observability/span-store.js`);
const { SyncContextManager } = await import(`${dist}/observability/sync-context.js`);
const tc = await import(`${dist}/observability/trace-context.js`);

context.setGlobalContextManager(new SyncContextManager());
const exporter = {
  export(_spans, done) {
    done({ code: 0 });
  },
  async shutdown() {},
};
const store = new SpanStore({ maxSpans: 10_000, maxBytes: 16 * 1024 * 1024 });
const recorder = new SpanRecorder(
  {
    processors: [new BatchSpanProcessor(exporter), store],
    resource: { attributes: {} },
    instrumentationScope: { name: 'caxton' },
  },
  { parentBased: true, root: 'on', ratio: 1 },
);
let sink = 0;

/** The route span; a build without childTraceContext hands on a plain trace context. */
function route() {
  const span = tc.startSpan(recorder, tc.spanName('message.route', 'inform'), undefined, undefined, SpanKind.PRODUCER);
  if (span.isRecording()) tc.giveAttributes(span, { 'caxton.performative': 'inform', 'caxton.sender': 'bench' });
  const handed = tc.childTraceContext
    ? tc.childTraceContext(span, undefined, undefined)
    : { traceparent: tc.childTraceparent(span, undefined) };
  sink += JSON.stringify(handed).length;
  span.end();
  return handed;
}

/** The delivery span; a build without startSpanIn parses the traceparent. */
function deliver(handed) {
  const name = tc.spanName('message.deliver', 'inform');
  const span = tc.startSpanIn
    ? tc.startSpanIn(recorder, name, handed, SpanKind.CONSUMER)
    : tc.startSpan(recorder, name, handed.traceparent, undefined, SpanKind.CONSUMER);
  if (span.isRecording())
    tc.giveAttributes(span, { 'caxton.performative': 'inform', 'caxton.receiver': 'calc', 'caxton.attempt': 1 });
  const tp = tc.childTraceparent(span, handed.traceparent);
  sink += tc.withSpan(span, () => tp.length);
  span.setAttribute('caxton.outcome', 'done');
  span.end();
}

const IN_FLIGHT = 256;
const handed = new Array(IN_FLIGHT);
function burst() {
  for (let i = 0; i < IN_FLIGHT; i++) handed[i] = route();
  for (let i = 0; i < IN_FLIGHT; i++) deliver(handed[i]);
}

for (let i = 0; i < 2000; i++) burst();
const ns = [];
for (let r = 0; r < 15; r++) {
  global.gc();
  const t0 = process.cpuUsage();
  for (let i = 0; i < 200; i++) burst();
  const t = process.cpuUsage(t0);
  ns.push(((t.user + t.system) * 1000) / (200 * IN_FLIGHT));
}
ns.sort((a, b) => a - b);
global.gc();
const h0 = process.memoryUsage().heapUsed;
for (let i = 0; i < 20; i++) burst();
const bytes = (process.memoryUsage().heapUsed - h0) / (20 * IN_FLIGHT);
console.log(`${dist}: ${bytes.toFixed(0)} B allocated per message (route + deliver spans)`);
console.log(`CPU per message: ${ns[7].toFixed(0)} ns (quartiles ${ns[3].toFixed(0)}–${ns[11].toFixed(0)})`);
if (sink === 0) throw new Error('nothing was handed on');
