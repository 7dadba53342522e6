/**
 * What the connected nats-server offers against a power loss of its host, from the version it
 * announces: JetStream writes a stored message to its files before the PubAck but calls fsync on a
 * timer (`sync_interval`, two minutes by default), so an acknowledged delivery can be lost with the
 * host's page cache. nats-server 2.10 added `jetstream { sync_interval: always }` (an fsync per
 * write); 2.9 and older refuse the option and sync on their own timer only. Either way the
 * reconciliation sweep publishes again a pending delivery untouched (and held by no live node) for
 * `ack_wait` × `reconcile_after`: with the sweep a lost delivery is late, not lost.
 */

export interface NatsDurability {
  /** The server's version as it announced it ('unknown' when it did not). */
  version: string;
  /** Whether `jetstream { sync_interval: always }` is an option this server takes. */
  syncAlways: boolean;
  /** The trade, in one sentence, for the node's log. */
  summary: string;
}

/** The first release whose JetStream takes `sync_interval: always`. */
const SYNC_ALWAYS_SINCE = [2, 10] as const;

export function natsDurability(version: string | undefined, reconcileAfterMs: number): NatsDurability {
  const m = version === undefined ? null : /^v?(\d+)\.(\d+)/.exec(version);
  const major = m ? Number(m[1]) : 0;
  const minor = m ? Number(m[2]) : 0;
  const syncAlways =
    m !== null && (major > SYNC_ALWAYS_SINCE[0] || (major === SYNC_ALWAYS_SINCE[0] && minor >= SYNC_ALWAYS_SINCE[1]));
  const late = `a delivery JetStream acknowledged but had not synced when its host lost power is published again by the reconciliation sweep after ${Math.round(reconcileAfterMs / 1000)} s ([cluster.delivery] ack_wait × reconcile_after)`;
  const summary = syncAlways
    ? `nats-server ${version}: ${late}; its jetstream { sync_interval: always } closes that gap at the source, at one fsync per stored message`
    : m === null
      ? `nats-server of unknown version: ${late}`
      : `nats-server ${version} syncs JetStream on its own timer only (sync_interval: always needs 2.10 or later): ${late}`;
  return { version: version ?? 'unknown', syncAlways, summary };
}
