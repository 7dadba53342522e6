/**
 * GET /api/v1/cluster: the nodes of the cluster, their health, load and heartbeat age. A node
 * without `[cluster]` answers as a cluster of one (itself), so dashboards and the console read
 * one shape either way.
 */
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { NodeInfo } from '../../cluster/index.js';
import { docResponses } from '../lazy-schemas.js';

/** Where the node list comes from: JetStream membership on a cluster, the node itself otherwise. */
export interface ClusterView {
  readonly clustered: boolean;
  /** This node's name. */
  readonly node: string;
  nodes(): Promise<NodeInfo[]>;
}

export const clusterNodeSchema = z.object({
  node: z.string(),
  url: z.string().nullable().describe('the URL the node advertises ([cluster] advertise_url)'),
  version: z.string(),
  started_at: z.string(),
  heartbeat_at: z.string(),
  state: z
    .enum(['up', 'stale'])
    .describe('up: heard from within two heartbeats; stale: within three (then it is gone)'),
  age_ms: z.number().describe('since its last heartbeat reached JetStream (0 for a node that is not clustered)'),
  self: z.boolean().describe('the node that answered'),
  load: z
    .record(z.string(), z.number())
    .describe("the node's own figures: queued, running, open_conversations, dead_letters"),
});

export const clusterSchema = z.object({
  clustered: z.boolean(),
  node: z.string(),
  nodes: z.array(clusterNodeSchema),
});

export async function clusterRoutes(app: FastifyInstance, opts: { view: ClusterView }): Promise<void> {
  const r = app.withTypeProvider<ZodTypeProvider>();
  r.get(
    '/cluster',
    {
      schema: {
        summary: 'Cluster nodes: health, load and heartbeat age (a single node lists itself)',
        tags: ['system'],
        response: docResponses(() => ({ 200: clusterSchema })),
      },
    },
    async () => ({
      clustered: opts.view.clustered,
      node: opts.view.node,
      nodes: await opts.view.nodes(),
    }),
  );
}
