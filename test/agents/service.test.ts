import { afterEach, describe, expect, it } from 'vitest';
import {
  AGENT_MIGRATIONS,
  AgentRegistry,
  AgentService,
  AgentStore,
  AgentVersionStore,
  RolloutStore,
  type RegistryEvent,
} from '../../src/agents/index.js';
import { CaxtonError } from '../../src/shared/index.js';
import { migrate, openDatabase, type Db } from '../../src/storage/index.js';
import { tomlAgent } from '../helpers/http.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';

const open: Db[] = [];

function newService(dataDir: string) {
  const db = openDatabase(dataDir);
  open.push(db);
  migrate(db, AGENT_MIGRATIONS);
  const registry = new AgentRegistry();
  const service = new AgentService(registry, new AgentStore(db));
  return { db, registry, service };
}

async function thrown(fn: () => Promise<unknown>): Promise<CaxtonError> {
  try {
    await fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CaxtonError);
    return e as CaxtonError;
  }
  throw new Error('expected an error');
}

afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
  removeTempDirs();
});

describe('AgentService with a real SQLite store', () => {
  it('deploys, updates (revision 2), lists by capability and removes', async () => {
    const { service, registry } = newService(makeTempDir());
    const events: RegistryEvent['type'][] = [];
    registry.on('change', (e) => events.push(e.type));

    const a = await service.deploy({ body: tomlAgent('Alpha') }, 'create');
    expect(a.created).toBe(true);
    expect(a.agent.revision).toBe(1);
    expect(registry.providersOf('testing').map((x) => x.definition.name)).toEqual(['Alpha']);

    // The URL may spell the name in any case; the body keeps the deployed spelling.
    const b = await service.deploy(
      { body: 'name = "Alpha"\ncapabilities = ["reporting"]\nsystem_prompt = "v2"\n' },
      'update',
      'ALPHA',
    );
    expect(b.agent.revision).toBe(2);
    expect(b.agent.deployed_at).toBe(a.agent.deployed_at);
    // The capability index follows the update: the old capability is gone.
    expect(registry.providersOf('testing')).toEqual([]);
    expect(registry.list({ capability: 'reporting' }).total).toBe(1);
    expect(registry.capabilities()).toEqual([{ capability: 'reporting', agents: ['Alpha'] }]);
    expect(await service.source('Alpha')).toContain('v2');

    await service.remove('ALPHA');
    expect(registry.size).toBe(0);
    expect(registry.capabilities()).toEqual([]);
    expect(events).toEqual(['deployed', 'updated', 'removed']);
  });

  it('refuses an update whose name differs only in case (it would rename the agent), leaving the stored agent as it was', async () => {
    const dir = makeTempDir();
    const { service, registry } = newService(dir);
    await service.deploy({ body: tomlAgent('Alpha') }, 'create');
    const err = await thrown(() =>
      service.deploy({ body: 'name = "alpha"\nsystem_prompt = "v2"\n' }, 'update', 'Alpha'),
    );
    expect(err.code).toBe('invalid_request');
    expect(err.message).toContain('"alpha"');
    expect(err.message).toContain('"Alpha"');
    expect(registry.get('alpha')?.definition.name).toBe('Alpha');
    expect(registry.get('alpha')?.revision).toBe(1);
    expect(await service.source('Alpha')).not.toContain('v2');
    // Creating "ALPHA" beside "Alpha" is refused too (names are unique regardless of case).
    expect((await thrown(() => service.deploy({ body: tomlAgent('ALPHA') }, 'create'))).code).toBe('agent_exists');
  });

  it('persists API agents: a new service on the same database file gets them back, same revision', async () => {
    const dir = makeTempDir();
    const first = newService(dir);
    await first.service.deploy({ body: tomlAgent('keeper') }, 'create');
    await first.service.deploy({ body: tomlAgent('keeper', 'version = "2.0.0"\n') }, 'update', 'keeper');
    await first.service.deploy({ body: tomlAgent('gone') }, 'create');
    await first.service.remove('gone');
    first.db.close();

    const second = newService(dir);
    expect(second.service.loadPersisted()).toBe(1);
    const k = second.registry.get('KEEPER');
    expect(k?.revision).toBe(2);
    expect(k?.definition.version).toBe('2.0.0');
    expect(k?.origin).toEqual({ kind: 'api' });
    expect(second.registry.get('gone')).toBeUndefined();
  });

  it('a stored row of valid JSON but the wrong shape is skipped and reported (fields, what was expected); the others load', async () => {
    const dir = makeTempDir();
    const first = newService(dir);
    await first.service.deploy({ body: tomlAgent('keeper') }, 'create');
    await first.service.deploy({ body: tomlAgent('shapeless') }, 'create');
    const def = JSON.parse(
      first.db.prepare("SELECT definition FROM agents WHERE key = 'shapeless'").pluck().get() as string,
    ) as Record<string, unknown>;
    first.db
      .prepare("UPDATE agents SET definition = ? WHERE key = 'shapeless'")
      .run(JSON.stringify({ ...def, tools: [1], memory: null }));
    first.db.prepare("UPDATE agents SET format = 'yaml' WHERE key = 'keeper'").run();
    await first.service.deploy({ body: tomlAgent('fine') }, 'create');
    first.db.close();

    const db = openDatabase(dir);
    open.push(db);
    const skipped: [string, string][] = [];
    const service = new AgentService(
      new AgentRegistry(),
      new AgentStore(db, { onSkipped: (row, reason) => skipped.push([row, reason]) }),
    );
    expect(service.loadPersisted()).toBe(1);
    expect(service.registry.get('fine')).toBeDefined();
    expect(skipped).toEqual([
      ['keeper', 'its stored format "yaml" is not one of toml, markdown, json'],
      [
        'shapeless',
        'its stored definition has the wrong shape (tools.0: expected a string; memory: expected an object)',
      ],
    ]);
  });

  it('a rejected deploy changes neither the registry nor the store', async () => {
    const dir = makeTempDir();
    const { service, registry, db } = newService(dir);
    await service.deploy({ body: tomlAgent('one') }, 'create');
    const count = () => (db.prepare('SELECT count(*) AS n FROM agents').get() as { n: number }).n;

    expect((await thrown(() => service.deploy({ body: 'name = "two"\n' }, 'create'))).code).toBe('invalid_agent');
    expect((await thrown(() => service.deploy({ body: tomlAgent('ONE') }, 'create'))).code).toBe('agent_exists');
    expect((await thrown(() => service.deploy({ body: tomlAgent('other') }, 'update', 'one'))).code).toBe(
      'invalid_request',
    );
    expect((await thrown(() => service.deploy({ body: tomlAgent('missing') }, 'update', 'missing'))).code).toBe(
      'agent_not_found',
    );
    expect((await thrown(() => service.remove('missing'))).code).toBe('agent_not_found');

    expect(registry.list().agents.map((a) => [a.definition.name, a.revision])).toEqual([['one', 1]]);
    expect(count()).toBe(1);
  });

  it('two deploys of one agent at once take turns: one creates it, the other is told it exists; two updates both apply, one after the other', async () => {
    const { service, registry, db } = newService(makeTempDir());
    const [one, two] = await Promise.allSettled([
      service.deploy({ body: tomlAgent('Twin') }, 'create'),
      service.deploy({ body: tomlAgent('twin') }, 'create'),
    ]);
    expect(one).toMatchObject({ status: 'fulfilled', value: { created: true } });
    expect(two).toMatchObject({ status: 'rejected', reason: { code: 'agent_exists' } });
    const updates = await Promise.all(
      ['v2', 'v3'].map((p) =>
        service.deploy(
          { body: `name = "Twin"\ncapabilities = ["testing"]\nsystem_prompt = "${p}"\n` },
          'update',
          'twin',
        ),
      ),
    );
    expect(updates.map((u) => u.agent.revision)).toEqual([2, 3]);
    expect(registry.get('twin')?.definition.system_prompt).toBe('v3');
    expect(db.prepare("SELECT revision FROM agents WHERE key = 'twin'").pluck().get()).toBe(3);
  });

  it('a file agent cannot be replaced or removed through the service API', async () => {
    const { service, registry } = newService(makeTempDir());
    const st = service.files.applyFile('/agents/f.toml', Buffer.from(tomlAgent('filed')));
    expect(st.state).toBe('loaded');
    expect((await thrown(() => service.deploy({ body: tomlAgent('Filed') }, 'create'))).code).toBe(
      'agent_managed_by_file',
    );
    expect((await thrown(() => service.deploy({ body: tomlAgent('filed') }, 'update', 'filed'))).code).toBe(
      'agent_managed_by_file',
    );
    expect((await thrown(() => service.remove('filed'))).code).toBe('agent_managed_by_file');
    expect(registry.get('filed')?.origin).toEqual({ kind: 'file', path: '/agents/f.toml' });
  });

  it('a promotion and a rollback that both found the rollout running: the second to record is a conflict naming how it ended, and records nothing', async () => {
    const db = openDatabase(makeTempDir());
    open.push(db);
    migrate(db, AGENT_MIGRATIONS);
    const rollouts = new RolloutStore(db);
    const versions = new AgentVersionStore(db);
    const service = new AgentService(new AgentRegistry(), new AgentStore(db), { versions, rollouts });
    await service.deploy({ body: tomlAgent('Pilot') }, 'create');
    let live = 'You are Pilot.';
    for (const first of ['promote', 'rollback'] as const) {
      const prompt = `You are pilot ${first}.`;
      await service.deploy(
        { body: tomlAgent('Pilot').replace('You are Pilot.', prompt), strategy: 'blue-green' },
        'update',
        'pilot',
      );
      const before = versions.latest('pilot')!.version;
      // Both called in one tick: each checks the running rollout before either records its version.
      const promote = () => service.promote('pilot', 'key:p');
      const rollback = () => service.rollback('pilot', undefined, 'key:r');
      const [won, lost] = await Promise.allSettled(
        first === 'promote' ? [promote(), rollback()] : [rollback(), promote()],
      );
      expect(won.status).toBe('fulfilled');
      // Before: both fulfilled, a rollback version (the stable content) recorded after the promotion while the candidate stayed live.
      expect(lost.status).toBe('rejected');
      const e = (lost as PromiseRejectedResult).reason as CaxtonError;
      expect(e).toBeInstanceOf(CaxtonError);
      expect(e.code).toBe('conflict');
      expect(e.message).toMatch(
        first === 'promote'
          ? /blue-green rollout of version \d+ of agent "Pilot" was promoted by key:p meanwhile/
          : /was rolled back by key:r meanwhile/,
      );
      expect(versions.latest('pilot')).toMatchObject({
        version: before + 1,
        how: first === 'promote' ? 'promotion' : 'rollback',
      });
      expect(rollouts.running('pilot')).toBeUndefined();
      if (first === 'promote') live = prompt;
      expect(service.registry.get('pilot')!.definition.system_prompt).toBe(live);
    }
  });
});
