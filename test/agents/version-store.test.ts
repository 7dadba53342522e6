/** The single node's agent version store (SQLite, src/agents/versions/versions.ts) through the shared suite of the port. */
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_MIGRATIONS, AgentVersionStore } from '../../src/agents/index.js';
import { migrate, openDatabase } from '../../src/storage/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { newVersion, versionStoreSuite } from './version-store-suite.js';

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

describe('the newest version kept in memory', () => {
  const store = () => {
    const db = openDatabase(makeTempDir());
    migrate(db, AGENT_MIGRATIONS);
    return new AgentVersionStore(db);
  };

  it('answers what the table holds after every write: none, an append, a rolled-back append, a removal', () => {
    const s = store();
    expect(s.latest('writer')).toBeUndefined();
    expect(s.latest('writer')).toBeUndefined();
    const v1 = s.append(newVersion('writer', 'version = "1.0.0"\n'));
    expect(s.latest('writer')).toMatchObject({ version: v1.version, semver: '1.0.0' });
    // Read inside a transaction that is then rolled back: the version it wrote is not kept.
    expect(() =>
      s.transaction(() => {
        s.append(newVersion('writer', 'version = "2.0.0"\n'));
        expect(s.latest('writer')).toMatchObject({ version: 2 });
        throw new Error('rolled back');
      }),
    ).toThrow('rolled back');
    expect(s.latest('writer')).toMatchObject({ version: 1, semver: '1.0.0' });
    expect(Object.isFrozen(s.latest('writer'))).toBe(true);
    s.removed('writer');
    s.append(newVersion('writer', 'version = "3.0.0"\n'));
    expect(s.latest('writer')).toMatchObject({ version: 2, semver: '3.0.0' });
  });
});
