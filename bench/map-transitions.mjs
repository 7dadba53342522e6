/**
 * Which object literals make a new hidden class on every evaluation: reads the map log V8 writes
 * under `--log-maps` and counts its transitions by source position and property name. A site
 * that runs once per operation and adds a property through a fresh transition each time shows up
 * with a count near the number of operations (ADR 0107); a healthy one transitions once and then
 * reuses the map. Each site is matched to the files under `dist/` whose line holds that name (the
 * log gives a line and column, not a file; Node's own modules are not on disk and show none).
 * A probe, not a suite.
 *
 *   node --log-maps --no-log-maps-details --logfile=/tmp/maps.log <workload>
 *   node bench/map-transitions.mjs /tmp/isolate-*-maps.log [TOP]      (the largest file is the main thread)
 */
import { createReadStream, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';

const [file, topArg] = process.argv.slice(2);
if (!file) throw new Error('usage: node bench/map-transitions.mjs MAPS_LOG [TOP]');
const TOP = Number(topArg ?? 15);
const counts = new Map();
for await (const line of createInterface({ input: createReadStream(file) })) {
  if (!line.startsWith('map,Transition,')) continue;
  // map,Transition,time,from,to,pc,line,column,reason,name
  const f = line.split(',');
  const key = `${f[6]},${f[7]},${f.slice(9).join(',')}`;
  counts.set(key, (counts.get(key) ?? 0) + 1);
}
const dist = join(process.cwd(), 'dist');
const files = [];
const walk = (d) => {
  for (const e of readdirSync(d)) {
    const p = join(d, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (e.endsWith('.js')) files.push(p);
  }
};
try {
  walk(dist);
} catch {
  // No build here: sites are printed without files.
}
const lines = new Map();
const lineOf = (p, n) => {
  let l = lines.get(p);
  if (!l) lines.set(p, (l = readFileSync(p, 'utf8').split('\n')));
  return l[n - 1] ?? '';
};
console.log('| Transitions | Line, column | Property | Files under dist/ with that name on that line |');
console.log('| ---: | --- | --- | --- |');
for (const [key, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, TOP)) {
  const [ln, col, ...rest] = key.split(',');
  const name = rest.join(',');
  const plain = /^[A-Za-z_$][\w$]*$/.test(name) ? name : undefined;
  const where =
    plain === undefined || Number(ln) < 1
      ? []
      : files.filter((p) => lineOf(p, Number(ln)).includes(plain)).map((p) => relative(process.cwd(), p));
  console.log(`| ${n} | ${ln}, ${col} | \`${name}\` | ${where.slice(0, 3).join(', ') || '—'} |`);
}
