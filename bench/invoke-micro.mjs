/**
 * The invoke path's small per-request helpers of two builds side by side, in one process: a
 * prompt render (the default `{{request}}` and a template of four placeholders) and a
 * time-ordered id. 7 alternated reps of 200,000 calls each; the median CPU time per call and the
 * range. A probe for the changes of ADR 0100, not a suite.
 *
 *   npm run build && node bench/invoke-micro.mjs BASE_DIR [CHANGED_DIR]     (CHANGED_DIR: this checkout)
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [baseDir, changedDir = '.'] = process.argv.slice(2);
if (!baseDir) throw new Error('usage: node bench/invoke-micro.mjs BASE_DIR [CHANGED_DIR]');
const load = (dir, p) => import(pathToFileURL(resolve(dir, 'dist', p)).href);
const [pb, pc, ib, ic] = await Promise.all([
  load(baseDir, 'execution/prompt.js'),
  load(changedDir, 'execution/prompt.js'),
  load(baseDir, 'shared/ids.js'),
  load(changedDir, 'shared/ids.js'),
]);
const def = {
  name: 'text',
  description: 'bench',
  parameters: {},
  system_prompt: 'Answer briefly.',
  user_prompt_template: '{{request}}',
};
const req = { request: 'hello' };
const def4 = {
  ...def,
  user_prompt_template: 'Context:\n{{context}}\n\nTask for {{agent.name}}: {{request}}\nStyle: {{parameters.style}}',
};
const req4 = { request: 'hello', context: 'some context', parameters: { style: 'terse' } };
let sink;
const cpuNs = (n, f) => {
  const c = process.cpuUsage();
  for (let i = 0; i < n; i++) sink = f();
  const d = process.cpuUsage(c);
  return ((d.user + d.system) * 1000) / n;
};
const cases = [
  [
    'render {{request}}',
    () => pb.renderTemplate(def.user_prompt_template, def, req),
    () => pc.renderTemplate(def.user_prompt_template, def, req),
    true,
  ],
  [
    'render 4 placeholders',
    () => pb.renderTemplate(def4.user_prompt_template, def4, req4),
    () => pc.renderTemplate(def4.user_prompt_template, def4, req4),
    true,
  ],
  ['time-ordered id', () => ib.timeOrderedUuid(), () => ic.timeOrderedUuid(), false],
];
for (const [name, a, b, same] of cases) {
  if (same && a() !== b()) throw new Error(`${name}: the builds disagree: ${a()} / ${b()}`);
  const ra = [];
  const rb = [];
  for (let r = 0; r < 7; r++) {
    ra.push(cpuNs(200_000, a));
    rb.push(cpuNs(200_000, b));
  }
  const med = (x) => [...x].sort((p, q) => p - q)[3];
  const range = (x) => `${Math.min(...x).toFixed(0)}–${Math.max(...x).toFixed(0)}`;
  console.log(
    `${name.padEnd(24)} base ${med(ra).toFixed(0)} ns (${range(ra)})  changed ${med(rb).toFixed(0)} ns (${range(rb)})`,
  );
}
void sink;
