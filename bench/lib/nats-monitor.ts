/**
 * Message counts of a nats-server, read from its HTTP monitor (/varz, /connz): how many NATS
 * messages a workload moved, and on which client connection (a node names its connections
 * `caxton:<node>` and `caxton:<node>:events`), to say where the messages of a cluster go.
 */

export interface NatsCounts {
  /** The whole server: messages in from clients, and out to them. */
  server: { in_msgs: number; out_msgs: number };
  /** Per connection name (unnamed connections under `(unnamed)`), summed over same-named ones. */
  connections: Record<string, { in_msgs: number; out_msgs: number }>;
}

interface Conn {
  name?: string;
  in_msgs: number;
  out_msgs: number;
}

export async function natsCounts(monitorUrl: string): Promise<NatsCounts> {
  const [varz, connz] = await Promise.all([
    fetch(`${monitorUrl}/varz`).then((r) => r.json() as Promise<{ in_msgs: number; out_msgs: number }>),
    fetch(`${monitorUrl}/connz?limit=4096`).then((r) => r.json() as Promise<{ connections: Conn[] }>),
  ]);
  const connections: NatsCounts['connections'] = {};
  for (const c of connz.connections) {
    const k = c.name || '(unnamed)';
    const x = (connections[k] ??= { in_msgs: 0, out_msgs: 0 });
    x.in_msgs += c.in_msgs;
    x.out_msgs += c.out_msgs;
  }
  return { server: { in_msgs: varz.in_msgs, out_msgs: varz.out_msgs }, connections };
}

/** b − a; a connection missing at the start counts from zero. */
export function natsDelta(a: NatsCounts, b: NatsCounts): NatsCounts {
  const connections: NatsCounts['connections'] = {};
  for (const [k, x] of Object.entries(b.connections)) {
    const y = a.connections[k] ?? { in_msgs: 0, out_msgs: 0 };
    connections[k] = { in_msgs: x.in_msgs - y.in_msgs, out_msgs: x.out_msgs - y.out_msgs };
  }
  return {
    server: { in_msgs: b.server.in_msgs - a.server.in_msgs, out_msgs: b.server.out_msgs - a.server.out_msgs },
    connections,
  };
}

export function natsSum(a: NatsCounts, b: NatsCounts): NatsCounts {
  const connections: NatsCounts['connections'] = { ...a.connections };
  for (const [k, x] of Object.entries(b.connections)) {
    const y = connections[k] ?? { in_msgs: 0, out_msgs: 0 };
    connections[k] = { in_msgs: x.in_msgs + y.in_msgs, out_msgs: x.out_msgs + y.out_msgs };
  }
  return {
    server: { in_msgs: a.server.in_msgs + b.server.in_msgs, out_msgs: a.server.out_msgs + b.server.out_msgs },
    connections,
  };
}

export const noNats = (): NatsCounts => ({ server: { in_msgs: 0, out_msgs: 0 }, connections: {} });
