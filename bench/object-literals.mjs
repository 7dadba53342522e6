/**
 * What an object literal that copies an object and adds fields costs in optimized code on this
 * Node, and whether its results share one hidden class: the forms ADR 0107 compares, each in its
 * own function, warmed until optimized, then 7 alternated reps of 500,000 evaluations; the median
 * CPU time per evaluation and the range. Needs `--allow-natives-syntax` (for %HaveSameMap). A
 * probe, not a suite.
 *
 *   node --allow-natives-syntax bench/object-literals.mjs
 */
const REPS = 7;
const N = 500_000;
const message = JSON.parse(
  '{"id":"m1","performative":"inform","sender":"a","receivers":["b"],"content":"x","conversation_id":"c","params":{},"timestamp":"t"}',
);
const COPY_ROOT = Object.freeze({});
let some = true;
const forms = [
  ['{ ...m } (a copy only)', (m) => ({ ...m })],
  ['{ ...m, content } (overrides a field m has)', (m) => ({ ...m, content: 'y' })],
  ['{ ...m, routed_to } (adds a field)', (m) => ({ ...m, routed_to: 1 })],
  [
    'const c = { ...m }; c.routed_to = 1',
    (m) => {
      const c = { ...m };
      c.routed_to = 1;
      return c;
    },
  ],
  ['{ ...(flag && { q }), ...m, routed_to }', (m) => ({ ...(some && { q: 1 }), ...m, routed_to: 1 })],
  ['{ routed_to, ...m } (own fields first)', (m) => ({ routed_to: 1, ...m })],
  ['{ ...COPY_ROOT, ...m, routed_to }', (m) => ({ ...COPY_ROOT, ...m, routed_to: 1 })],
  [
    '{ ...COPY_ROOT, ...(flag && { q }), ...m, routed_to }',
    (m) => ({ ...COPY_ROOT, ...(some && { q: 1 }), ...m, routed_to: 1 }),
  ],
  ['Object.assign({}, m, { routed_to })', (m) => Object.assign({}, m, { routed_to: 1 })],
];

const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)');
const cpuNs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
};
const times = forms.map(() => []);
const stable = forms.map(([, f]) => {
  for (let i = 0; i < 200_000; i++) f(message);
  return sameMap(f(message), f(message));
});
for (let r = 0; r < REPS; r++) {
  // Alternated: each rep runs the forms in a rotated order.
  for (let k = 0; k < forms.length; k++) {
    const i = (k + r) % forms.length;
    const f = forms[i][1];
    const t0 = cpuNs();
    for (let j = 0; j < N; j++) f(message);
    times[i].push((cpuNs() - t0) / N);
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
console.log(`Node ${process.version} (V8 ${process.versions.v8}), ${REPS} reps of ${N.toLocaleString('en')}\n`);
console.log('| Literal | ns per evaluation, median (range) | One hidden class |');
console.log('| --- | --- | --- |');
forms.forEach(([name], i) => {
  const t = times[i];
  console.log(
    `| \`${name}\` | ${median(t).toFixed(0)} (${Math.min(...t).toFixed(0)}–${Math.max(...t).toFixed(0)}) | ${stable[i] ? 'yes' : '**no**'} |`,
  );
});
