import { describe, expect, it } from 'vitest';
import type { JsMsg } from '@nats-io/jetstream';
import { groupHandOuts, isGroupWire, PublishGroups } from '../../../src/messaging/cluster/delivery-groups.js';

/** What the hand-outs did to the group's stream message. */
function message(seq = 7, deliveryCount = 1) {
  const calls: string[] = [];
  const m = {
    seq,
    info: { deliveryCount },
    ack: () => calls.push('ack'),
    nak: (ms?: number) => calls.push(ms === undefined ? 'nak' : `nak ${ms}`),
    term: () => calls.push('term'),
    working: () => calls.push('working'),
  };
  return { m: m as unknown as JsMsg, calls };
}

describe('a group message settles once every delivery in it is settled', () => {
  it('is acknowledged after the last of its deliveries is acked or dead-lettered, not before', () => {
    const { m, calls } = message();
    const [a, b, c] = groupHandOuts(m, 3);
    a!.ack();
    b!.term('dead letter');
    expect(calls).toEqual([]);
    c!.ack();
    expect(calls).toEqual(['ack']);
  });

  it('is given back whole, after the shortest delay asked, when any delivery was given back', () => {
    const { m, calls } = message();
    const [a, b, c] = groupHandOuts(m, 3);
    b!.nak(5000);
    a!.ack();
    c!.nak(250);
    expect(calls).toEqual(['nak 250']);
  });

  it('a delivery given back with no delay gives the group back at once when it settles', () => {
    const { m, calls } = message();
    const [a, b] = groupHandOuts(m, 2);
    a!.nak();
    b!.ack();
    expect(calls).toEqual(['nak']);
  });

  it('settling one delivery twice counts once', () => {
    const { m, calls } = message();
    const [a, b] = groupHandOuts(m, 2);
    a!.ack();
    a!.ack();
    a!.nak(10);
    expect(calls).toEqual([]);
    b!.ack();
    expect(calls).toEqual(['ack']);
  });

  it('a message whose connection closed meanwhile is left to the ack wait, without a throw', () => {
    const { m } = message();
    (m as unknown as { ack(): void }).ack = () => {
      throw new Error('connection closed');
    };
    const [a] = groupHandOuts(m, 1);
    expect(() => a!.ack()).not.toThrow();
  });

  it('carries the message sequence and delivery count, and says it is worked on at most every 200 ms', () => {
    const { m, calls } = message(42, 3);
    const outs = groupHandOuts(m, 3);
    expect(outs.map((o) => [o.seq, o.info.deliveryCount])).toEqual([
      [42, 3],
      [42, 3],
      [42, 3],
    ]);
    for (const o of outs) o.working();
    expect(calls).toEqual(['working']);
  });
});

describe('publishing first hand-outs in groups', () => {
  const groups = (maxCount: number, maxChars = 1_000_000) => {
    const sent: { subject: string; payload: string; msgId: string }[] = [];
    let fail: Error | undefined;
    const g = new PublishGroups({
      send: (subject, payload, msgId) => {
        sent.push({ subject, payload, msgId });
        return fail ? Promise.reject(fail) : Promise.resolve();
      },
      maxCount,
      maxChars: () => maxChars,
    });
    return { g, sent, failWith: (e: Error) => (fail = e) };
  };
  const wire = (id: number) => JSON.stringify({ id, receiver: 'a', message: { id: `m${id}` } });

  it('one turn of deliveries to one subject is one message; a lone delivery is its own wire', async () => {
    const { g, sent } = groups(100);
    await Promise.all([1, 2, 3].map((id) => g.add('d.a', id, wire(id))));
    await g.add('d.b', 4, wire(4));
    expect(sent.map((s) => [s.subject, s.msgId])).toEqual([
      ['d.a', 'g1'],
      ['d.b', 'd4'],
    ]);
    const first = JSON.parse(sent[0]!.payload) as unknown;
    expect(isGroupWire(first)).toBe(true);
    expect((first as { g: { id: number }[] }).g.map((w) => w.id)).toEqual([1, 2, 3]);
    expect(JSON.parse(sent[1]!.payload)).toMatchObject({ id: 4 });
  });

  it('splits at group_max deliveries and at the size bound', async () => {
    const { g, sent } = groups(2);
    await Promise.all([1, 2, 3, 4, 5].map((id) => g.add('d.a', id, wire(id))));
    expect(sent.map((s) => s.msgId)).toEqual(['g1', 'g3', 'd5']);
    const bySize = groups(100, wire(1).length * 2 + 10);
    await Promise.all([1, 2, 3].map((id) => bySize.g.add('d.a', id, wire(id))));
    expect(bySize.sent.map((s) => s.msgId)).toEqual(['g1', 'd3']);
  });

  it('a failed publish fails every delivery it carried', async () => {
    const { g, failWith } = groups(100);
    failWith(new Error('no PubAck'));
    const results = await Promise.allSettled([1, 2].map((id) => g.add('d.a', id, wire(id))));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
