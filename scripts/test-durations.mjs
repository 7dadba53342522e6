#!/usr/bin/env node
// Writes test/durations.json, the seconds each test file of 5 s or more took, from a vitest JSON
// report, for the sequencer that starts the longest files first (test/helpers/sequencer.ts).
//   npx vitest run --reporter=json --outputFile=/tmp/durations.json && node scripts/test-durations.mjs /tmp/durations.json
import { readFileSync, writeFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';

const report = process.argv[2];
if (!report) {
  console.error('usage: node scripts/test-durations.mjs REPORT.json (a vitest --reporter=json output file)');
  process.exit(2);
}
const root = resolve(import.meta.dirname, '..');
const { testResults } = JSON.parse(readFileSync(report, 'utf8'));
const durations = Object.fromEntries(
  testResults
    .map((f) => [relative(root, f.name), Math.round((f.endTime - f.startTime) / 1000)])
    .filter(([, s]) => s >= 5)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)),
);
writeFileSync(resolve(root, 'test/durations.json'), JSON.stringify(durations, null, 2) + '\n');
console.log(`test/durations.json: ${Object.keys(durations).length} files of 5 s or more`);
