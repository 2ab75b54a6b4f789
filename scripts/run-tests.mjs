#!/usr/bin/env node
// Runs every tests/**/*.test.ts with Node's test runner through tsx.
// Usage: node scripts/run-tests.mjs [filter substring...]
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
function walk(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (f === '.cache' || f === 'fixtures') return [];
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.ts') ? [p] : [];
  });
}
const filters = process.argv.slice(2);
const files = walk(join(root, 'tests')).map((f) => relative(root, f)).sort()
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (!files.length) { console.error('no test files matched'); process.exit(1); }
if (!filters.length) {
  // Type-check the tests and benchmarks too (src is compiled by the setup step).
  const tc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.tests.json'], { cwd: root, stdio: 'inherit' });
  if (tc.status !== 0) process.exit(tc.status ?? 1);
}
// Two files at a time: each file spends ~2-3 s starting tsx and libtorch on one core, so a second
// file fills the other (12.0 -> 9.2 min on 2 cores). PANSEG_TEST_CONCURRENCY=1 runs them one by one.
const concurrency = process.env.PANSEG_TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files], {
  cwd: root, stdio: 'inherit', env: { ...process.env, PANSEG_TEST: '1' },
});
process.exit(r.status ?? 1);
