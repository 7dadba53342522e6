/**
 * Starts the longest test files first. vitest orders files by the durations it cached on the last
 * run, which a fresh clone (CI) does not have: it then orders by file size, and a 100-second file
 * that starts last holds the whole run up by its length. These files took 25 s or more each
 * (`npx vitest run --reporter=json --outputFile=durations.json` and sort by endTime - startTime; the
 * per-folder table in docs/testing.md). A file missing from the list only loses its head start.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export const LONGEST_FIRST = [
  'test/messaging/flood.test.ts',
  'test/cluster/three-nodes.e2e.test.ts',
  'test/cluster/pg-agent-versions-nodes.test.ts',
  'test/readme/stranger.test.ts',
  'test/messaging/contract/cluster.test.ts',
  'test/mcp/conformance-client.test.ts',
  'test/cli/messaging.test.ts',
  'test/cluster/pg-restart.e2e.test.ts',
  'test/execution/durable-runs-crash.test.ts',
  'test/cli/runs.test.ts',
  'test/server/tls.test.ts',
  'test/messaging/crash.test.ts',
  'test/cluster/durable-runs-nodes.e2e.test.ts',
  'test/console/agents.e2e.test.ts',
  'test/audit/anonymous.test.ts',
  'test/console/editor-typing.e2e.test.ts',
  'test/console/tools.e2e.test.ts',
  'test/cli/server.test.ts',
  'test/execution/claude-fixtures.test.ts',
  'test/auth/principals-http.test.ts',
  'test/console/sign-in.e2e.test.ts',
  'test/cli/init.test.ts',
  'test/server/persistence.test.ts',
  'test/memory/api.test.ts',
];

export default class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const rank = (f: TestSpecification) => {
      const i = LONGEST_FIRST.findIndex((p) => f.moduleId.endsWith(p));
      return i === -1 ? LONGEST_FIRST.length : i;
    };
    // Array.prototype.sort is stable: the rest keep vitest's order.
    return sorted.sort((a, b) => rank(a) - rank(b));
  }
}
