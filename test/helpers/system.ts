/**
 * System components some tests need beyond `npm ci`: PostgreSQL with pgvector (the PostgreSQL
 * memory backend) and promtool (checks of the metrics output and deploy/ alert rules).
 *
 * Why: the README's install and test commands must pass on a fresh machine, where these are not
 * installed, while CI must never pass without them. So vitest's global setup (system-setup.ts)
 * probes them once per run and prints ONE line per missing component naming it and the command
 * that installs it; test files ask `hasSystem(name)` at collection time and skip what depends on
 * a missing one. When CI is set (CI=true) or CAXTON_TEST_REQUIRE_SYSTEM=1, a missing component
 * fails the run instead (the global setup throws, and so does `hasSystem`), and every skip is also
 * appended to the file named by CAXTON_TEST_SKIP_LOG, which .ci/run checks is empty.
 */
import { appendFileSync } from 'node:fs';
import { inject } from 'vitest';
import { SYSTEM_COMPONENTS, systemRequired, type SystemComponent } from './system-probe.js';

export {
  SYSTEM_COMPONENTS,
  TEST_CHROMIUM,
  TEST_PG_URL,
  systemRequired,
  type SystemComponent,
  type SystemStatus,
} from './system-probe.js';

const recorded = new Set<SystemComponent>();

/**
 * Whether `name` is available, for `describe.skipIf(!hasSystem('promtool'))` and the like. Missing:
 * returns false (and appends to $CAXTON_TEST_SKIP_LOG), or throws when the run requires every
 * component (CI).
 */
export function hasSystem(name: SystemComponent): boolean {
  const status = inject('caxtonSystem');
  if (!status) throw new Error('test/helpers/system-setup.ts did not run: run the tests through vitest.config.ts');
  const reason = status[name];
  if (reason === null) return true;
  const { label, install } = SYSTEM_COMPONENTS[name];
  if (systemRequired())
    throw new Error(
      `${label} is required here (CI or CAXTON_TEST_REQUIRE_SYSTEM=1) but missing: ${reason}; install it with: ${install}`,
    );
  const log = process.env.CAXTON_TEST_SKIP_LOG;
  if (log && !recorded.has(name)) {
    recorded.add(name);
    appendFileSync(log, `${name}\t${reason}\n`);
  }
  return false;
}
