import { createHash } from 'node:crypto';
import { setImmediate as tick } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/storage/index.js';
import { ToolAuditStore, type ToolAuditRecord } from '../../src/audit/index.js';
import { makeTempDir, removeTempDirs } from '../helpers/tmp.js';
import { ctx, EXTISM_IMPORTS, outputText, server } from '../tools/wasm/helpers.js';

afterAll(removeTempDirs);

const rec = (over: Partial<ToolAuditRecord>): ToolAuditRecord => ({
  time: 1_700_000_000_000,
  agent: 'a',
  server: 's',
  tool: 's.t',
  args_digest: 'd',
  outcome: 'ok',
  duration_us: 5,
  fuel_used: 10,
  memory_bytes: 65536,
  input_bytes: 2,
  output_bytes: 2,
  ...over,
});

describe('ToolAuditStore', () => {
  it('migrates, buffers until the next turn, and answers filtered queries newest first', async () => {
    const db = openDatabase(makeTempDir('caxton-audit-'));
    const store = new ToolAuditStore(db);
    new ToolAuditStore(db); // migrating twice is harmless
    store.record(rec({ agent: 'alice', tool: 'text.echo', server: 'text', conversation_id: 'c1', time: 1000 }));
    store.record(
      rec({
        agent: 'bob',
        tool: 'text.stats',
        server: 'text',
        outcome: 'fuel_exhausted',
        error: 'out of fuel',
        time: 2000,
      }),
    );
    store.record(
      rec({ agent: 'alice', tool: 'web.get', server: 'web', outcome: 'denied', time: 3000, execution_id: 'e9' }),
    );
    expect((db.prepare('SELECT count(*) AS n FROM tool_audit').get() as { n: number }).n).toBe(0);
    await tick();
    expect((db.prepare('SELECT count(*) AS n FROM tool_audit').get() as { n: number }).n).toBe(3);

    expect(store.query().map((r) => r.tool)).toEqual(['web.get', 'text.stats', 'text.echo']);
    expect(store.query({ agent: 'alice' }).map((r) => r.tool)).toEqual(['web.get', 'text.echo']);
    expect(store.query({ tool: 'text.*' }).map((r) => r.tool)).toEqual(['text.stats', 'text.echo']);
    expect(store.query({ tool: 'text.echo' })).toHaveLength(1);
    expect(store.query({ server: 'web' })[0]).toMatchObject({ execution_id: 'e9', outcome: 'denied' });
    expect(store.query({ conversation_id: 'c1' })[0]).toMatchObject({ agent: 'alice', conversation_id: 'c1' });
    expect(store.query({ outcome: 'failed' }).map((r) => r.outcome)).toEqual(['denied', 'fuel_exhausted']);
    expect(store.query({ outcome: 'fuel_exhausted' })[0]).toMatchObject({ error: 'out of fuel' });
    expect(store.query({ since: 2000, until: 3000 }).map((r) => r.time)).toEqual([2000]);
    expect(store.query({ since: new Date(2500).toISOString() }).map((r) => r.time)).toEqual([3000]);
    const page1 = store.query({ limit: 2 });
    expect(store.query({ before_id: page1[1]!.id }).map((r) => r.time)).toEqual([1000]);
    store.close();
    db.close();
  });

  it('records every call of a tool server (time, agent, conversation, digest, outcome, duration, fuel, memory)', async () => {
    const db = openDatabase(makeTempDir('caxton-audit-'));
    const store = new ToolAuditStore(db);
    const s = await server(
      'aud',
      ['ok', 'spin'],
      `(module ${EXTISM_IMPORTS} (memory (export "memory") 1)
      (func (export "ok") (result i32) (local $p i64) ${outputText('ok')} (i32.const 0))
      (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0)))`,
      '[limits]\nfuel = 1000\n',
      { audit: store },
    );
    const before = Date.now();
    await s.tools[0]!.invoke({ q: 1 }, ctx({ agent: 'alice', conversation_id: 'conv-7', execution_id: 'ex-1' }));
    const spinStart = performance.now();
    await s.tools[1]!.invoke({}, ctx({ agent: 'alice' }));
    const spinWallUs = (performance.now() - spinStart) * 1000;
    const [spin, ok] = store.query({ agent: 'alice' });
    expect(ok).toMatchObject({
      agent: 'alice',
      conversation_id: 'conv-7',
      execution_id: 'ex-1',
      server: 'aud',
      tool: 'aud.ok',
      outcome: 'ok',
      args_digest: createHash('sha256').update('{"q":1}').digest('hex'),
      input_bytes: 7,
      output_bytes: 2,
      memory_bytes: expect.any(Number),
    });
    expect(ok!.time).toBeGreaterThanOrEqual(before);
    expect(ok!.fuel_used).toBeGreaterThan(0);
    expect(ok!.memory_bytes).toBeGreaterThanOrEqual(65536);
    expect(spin).toMatchObject({
      tool: 'aud.spin',
      outcome: 'fuel_exhausted',
      fuel_used: 1000,
      error: expect.stringMatching(/ran out of fuel/),
    });
    // The call's own duration: some time passed (a recorded 0 or a constant would fail), and no
    // more than the wall time around the call.
    expect(spin!.duration_us).toBeGreaterThan(0);
    expect(spin!.duration_us).toBeLessThanOrEqual(spinWallUs);
    store.close();
    db.close();
  });
});
