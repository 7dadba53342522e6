/**
 * The configuration of compose.yaml's three Caxton nodes, validated by the project's own loader:
 * each node's container is laid out under a temp dir (the image's /etc/caxton, then the node's
 * bind mounts, deploy/compose/cluster.toml among them) and its configuration loaded with the
 * environment the compose file gives it, as `caxton serve` would load it, [cluster.state]
 * resolved to its PostgreSQL URL. No server starts here (files.test.ts starts one); no NATS or
 * PostgreSQL is needed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { clusterStateConfig, loadServerConfig } from '../../src/config/index.js';
import { parseTomlBounded } from '../../src/shared/toml.js';
import { repoRoot } from '../helpers/fixtures.js';
import { bindMounts, caxtonNodes, layOutNode, mapPaths, nodeEnv, readCompose } from './compose.js';

const dir = mkdtempSync(join(tmpdir(), 'caxton-compose-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const compose = readCompose();
const nodes = caxtonNodes(compose);
const pg = compose.services.postgres!.environment!;
const PG_URL = `postgres://${pg.POSTGRES_USER}:${pg.POSTGRES_PASSWORD}@postgres:5432/${pg.POSTGRES_DB}`;

const toml = (file: string) => {
  const r = parseTomlBounded(readFileSync(file, 'utf8'));
  if (!r.ok) throw new Error(`${file}: ${r.issue.message}`);
  return r.doc;
};

describe('deploy/compose: each node configuration, through the loader', () => {
  it('has three Caxton nodes, each mounting deploy/compose/cluster.toml where CAXTON_CONFIG points', () => {
    expect(nodes).toHaveLength(3);
    for (const [name, svc] of nodes) {
      const config = String(svc.environment?.CAXTON_CONFIG);
      const mount = bindMounts(svc).find((m) => m.target === config);
      expect(mount?.source, name).toBe(join(repoRoot, 'deploy/compose/cluster.toml'));
    }
  });

  it.each(nodes.map(([name]) => [name]))(
    '%s: validates with its environment, [cluster.state] naming the postgres service',
    (name) => {
      const svc = compose.services[name]!;
      const root = join(dir, name);
      layOutNode(svc, root);
      const env = nodeEnv(svc, root);
      const cfg = loadServerConfig({ env, cwd: root });
      expect(cfg.source.file).toBe(mapPaths('/etc/caxton/cluster.toml', root));
      expect(cfg.source.env).toEqual(expect.arrayContaining(['CAXTON_CLUSTER__NODE', 'CAXTON_CLUSTER__ADVERTISE_URL']));
      // Relative paths of the file resolve to the image's own files.
      expect(cfg.agents_dir).toBe(mapPaths('/etc/caxton/agents', root));
      expect(cfg.data_dir).toBe(mapPaths('/var/lib/caxton', root));
      expect(cfg.llm.default_provider).toBe('demo');

      const cluster = cfg.cluster!;
      expect(cluster.node).toBe(name.replace(/^caxton-/, ''));
      expect(cluster.advertise_url).toBe(`http://${name}:${cfg.server.port}`);
      expect(cluster.nats.urls).toEqual(['nats://nats:4222']);
      expect(cluster.state).toEqual({
        url_env: 'CAXTON_CLUSTER_DATABASE_URL',
        schema: 'caxton_cluster',
        pool_size: 10,
        step_transactions: 2,
        step_linger: 0,
      });
      // What `caxton serve` resolves before it connects: the URL read from the variable url_env names.
      expect(clusterStateConfig(cluster, env)).toEqual({
        url: PG_URL,
        schema: 'caxton_cluster',
        pool_size: 10,
        step_transactions: 2,
        step_linger: 0,
      });
    },
  );

  it('cluster.toml is the image’s caxton.toml plus [cluster], nothing else', () => {
    const image = toml(join(repoRoot, 'deploy/docker/caxton.toml'));
    const { cluster, ...rest } = toml(join(repoRoot, 'deploy/compose/cluster.toml'));
    expect(rest).toEqual(image);
    expect(cluster).toBeDefined();
    // node and advertise_url differ per node: they come from each node's environment, not the shared file.
    expect(Object.keys(cluster as object)).not.toContain('node');
    expect(Object.keys(cluster as object)).not.toContain('advertise_url');
  });
});
