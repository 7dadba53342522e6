/** The single node's agent version store (SQLite, src/agents/versions.ts) through the shared suite of the port. */
import { afterAll } from 'vitest';
import { AGENT_MIGRATIONS, AgentVersionStore } from '../../src/agents/index.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { versionStoreSuite } from './version-store-suite.js';

afterAll(removeTempDirs);

versionStoreSuite('SQLite', ({ keep, keepRemoved }) => {
  const db = openDatabase(makeTempDir());
  migrate(db, AGENT_MIGRATIONS);
  return Promise.resolve(
    new AgentVersionStore(db, {
      ...(keep !== undefined && { keep }),
      ...(keepRemoved !== undefined && { keepRemoved }),
    }).port(),
  );
});
