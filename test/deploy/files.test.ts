/**
 * The container and cluster files in deploy/ (Dockerfile, compose.yaml, Kubernetes manifests),
 * checked offline — no container runtime can pull images on this machine: every file parses, the
 * ports and probe paths they declare are the configured ones and answer on a live server started
 * the way the image starts it (the Dockerfile's ENTRYPOINT + CMD and ENV, run directly with node
 * against this repository's dist/, /etc/caxton and /var/lib/caxton mapped to temp dirs), the
 * Kubernetes ConfigMap's caxton.toml starts a server too, and every CAXTON_* variable the files set
 * is one the configuration loader reads. compose.yaml runs three nodes as one cluster: each node's
 * configuration is loaded as its container would (test/deploy/compose.ts), and they must differ only
 * in their names, advertised URLs, ports and data volumes (compose-config.test.ts validates each).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterStateConfig, loadServerConfig, type ServerConfig } from '../../src/config/index.js';
import { freePorts } from '../cli/helpers/cli.js';
import { repoRoot } from '../helpers/fixtures.js';
import {
  caxtonNodes,
  COMPOSE,
  DOCKERFILE,
  imageEnvAt,
  layOutImage,
  layOutNode,
  mapPaths,
  nodeEnv,
  portMapping,
  readCompose,
  yamlDocs,
} from './compose.js';
import { execForm, parseDockerfile, stages, type Stage } from './dockerfile.js';

const K8S = join(repoRoot, 'deploy/kubernetes/caxton.yaml');
const YAML_FILES = [COMPOSE, K8S, join(repoRoot, 'deploy/prometheus/alerts.yml')];

const dir = mkdtempSync(join(tmpdir(), 'caxton-deploy-'));
const children = new Set<ChildProcess>();
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

type Obj = Record<string, unknown>;

const docker = stages(parseDockerfile(readFileSync(DOCKERFILE, 'utf8')));
const runtime = docker.at(-1)!;
const all = (s: Stage, name: string) => s.instructions.filter((i) => i.name === name);
const one = (s: Stage, name: string) => {
  const found = all(s, name);
  expect(found, `${name} in the runtime stage`).toHaveLength(1);
  return found[0]!.args;
};
const compose = readCompose();
const k8s = yamlDocs(K8S) as { kind: string; apiVersion: string; metadata: { name: string }; [k: string]: unknown }[];
const ofKind = <T = Obj>(kind: string) => k8s.filter((d) => d.kind === kind) as unknown as T[];

interface Container {
  image: string;
  args?: string[];
  env?: { name: string; value: string }[];
  envFrom?: { secretRef?: { name: string } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  startupProbe?: { httpGet: { path: string; port: string } };
  volumeMounts: { name: string; mountPath: string }[];
}
const sts = ofKind<{
  spec: {
    template: {
      spec: {
        containers: Container[];
        volumes: { name: string; configMap?: { name: string; items: { key: string; path: string }[] } }[];
      };
    };
    volumeClaimTemplates: { metadata: { name: string } }[];
  };
}>('StatefulSet')[0]!;
const container = sts.spec.template.spec.containers[0]!;
const configMap = ofKind<{ metadata: { name: string }; data: Record<string, string> }>('ConfigMap')[0]!;
const secret = ofKind<{ metadata: { name: string }; stringData: Record<string, string> }>('Secret')[0]!;
const service = ofKind<{ spec: { ports: { name: string; port: number; targetPort: string }[] } }>('Service')[0]!;
const monitor = ofKind<{
  spec: {
    endpoints: {
      port: string;
      path: string;
      authorization?: { type: string; credentials: { name: string; key: string } };
    }[];
  };
}>('ServiceMonitor')[0]!;

interface Live {
  url: string;
  metricsUrl: string;
  /** stdout (the JSON log) and stderr so far. */
  output(): string;
}

/** Runs `argv` (a container's command line, paths mapped) with `env`, on free ports, until /ready answers. */
async function startLive(argv: string[], env: Record<string, string>): Promise<Live> {
  const [port, metricsPort] = (await freePorts(2)) as [number, number];
  const [cmd, ...args] = argv;
  expect(cmd).toBe('node');
  // Ports are moved to free ones (8080/9090 may be taken here); the files' own ports are checked against the config separately.
  const child = spawn(process.execPath, args, {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: dir,
      ...env,
      CAXTON_PORT: String(port),
      CAXTON_METRICS_PORT: String(metricsPort),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 45_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}):\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`the server did not become ready:\n${stderr}`);
    const ready = await fetch(`${url}/ready`, { signal: AbortSignal.timeout(1000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, metricsUrl: `http://127.0.0.1:${metricsPort}`, output: () => stderr };
}

const status = async (url: string, headers: Record<string, string> = {}) =>
  (await fetch(url, { headers, signal: AbortSignal.timeout(5000) })).status;
/** The admin key the first start wrote into a data dir, as a request header. */
const adminAuth = (dataDir: string) => ({
  authorization: `Bearer ${readFileSync(join(dataDir, 'admin.key'), 'utf8').trim()}`,
});

/** The effective configuration for a set of env variables (files' paths mapped under `root`). */
function configFor(env: Record<string, string>): ServerConfig {
  return loadServerConfig({ env, cwd: dir });
}

/** CAXTON_* variables the loader did not read: neither applied (source.env) nor named by a `*_env` key. */
function unreadCaxtonVars(env: Record<string, string>, cfg: ServerConfig): string[] {
  const named = new Set<string>();
  const walk = (v: unknown, key = '') => {
    if (typeof v === 'string' && key.endsWith('_env')) named.add(v);
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, k);
  };
  walk(cfg);
  return Object.keys(env).filter(
    (k) => k.startsWith('CAXTON_') && k !== 'CAXTON_CONFIG' && !cfg.source.env.includes(k) && !named.has(k),
  );
}

// ---------------------------------------------------------------------------------------------
// The image: deploy/docker/Dockerfile

const imageRoot = join(dir, 'image');
const imageEnv = (): Record<string, string> => imageEnvAt(imageRoot);
let image: Live;

beforeAll(async () => {
  // /etc/caxton as the Dockerfile's COPY lines lay it out.
  layOutImage(imageRoot);
  const argv = [...execForm(one(runtime, 'ENTRYPOINT')), ...execForm(one(runtime, 'CMD'))].map((a) =>
    mapPaths(a, imageRoot),
  );
  image = await startLive(argv, imageEnv());
}, 60_000);

describe('deploy/docker/Dockerfile', () => {
  it('parses into a build stage and a runtime stage that runs as a non-root user', () => {
    expect(docker.length).toBeGreaterThanOrEqual(2);
    expect(docker[0]!.name).toBe('build');
    expect(
      all(docker[0]!, 'RUN')
        .map((r) => r.args)
        .join(' '),
    ).toMatch(/npm ci/);
    expect(
      all(docker[0]!, 'ENV')
        .map((r) => r.args)
        .join(' '),
    ).toMatch(/ONNXRUNTIME_NODE_INSTALL=skip/);
    const user = one(runtime, 'USER');
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    // The runtime stage takes only built output from the build stage, never the sources.
    const fromBuild = all(runtime, 'COPY').filter((i) => i.args.startsWith('--from=build'));
    expect(fromBuild.map((i) => i.args.split(/\s+/)[1])).toEqual(
      expect.arrayContaining(['/src/node_modules', '/src/dist', '/src/tools/builtin', '/src/templates']),
    );
    expect(fromBuild.some((i) => /\/src\/src\b/.test(i.args))).toBe(false);
  });

  it('declares the data volume, the configured ports, a health check on a real path, and an exec-form entrypoint', () => {
    const cfg = configFor(imageEnv());
    expect(cfg.data_dir).toBe(join(imageRoot, 'data'));
    expect(one(runtime, 'VOLUME')).toContain('/var/lib/caxton');
    expect(one(runtime, 'EXPOSE').split(/\s+/).map(Number).sort()).toEqual([cfg.server.port, cfg.metrics.port].sort());
    expect(cfg.server.host).toBe('0.0.0.0');
    expect(cfg.metrics.host).toBe('0.0.0.0');
    const health = one(runtime, 'HEALTHCHECK');
    expect(health).toContain(`http://127.0.0.1:${cfg.server.port}/health`);
    expect(execForm(one(runtime, 'ENTRYPOINT'))).toEqual(['node', '/opt/caxton/dist/cli/main.js']);
  });

  it('every CAXTON_* variable of its ENV is one the configuration loader reads', () => {
    const env = imageEnv();
    expect(Object.keys(env).filter((k) => k.startsWith('CAXTON_')).length).toBeGreaterThanOrEqual(3);
    expect(unreadCaxtonVars(env, configFor(env))).toEqual([]);
    expect(configFor(env).source.file).toBe(join(imageRoot, 'etc/caxton.toml'));
  });

  it('its entrypoint + cmd, run directly, serves /health, /ready and /metrics and answers the example agent', async () => {
    expect(await status(`${image.url}/health`)).toBe(200);
    expect(await status(`${image.url}/ready`)).toBe(200);
    // Bound beyond loopback: the API and the metrics port need a key (the first start wrote one).
    expect(await status(`${image.metricsUrl}/metrics`)).toBe(401);
    const auth = adminAuth(join(imageRoot, 'data'));
    const metrics = await fetch(`${image.metricsUrl}/metrics`, { headers: auth });
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toContain('caxton_');
    expect(image.output()).toMatch(/created the first API key/);
    expect(await status(`${image.url}/api/v1/agents`)).toBe(401);
    const res = await fetch(`${image.url}/api/v1/agents/assistant/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({ request: 'What is 6 * 7?' }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { content: string }).content).toBe('The answer is 42.');
  });

  it('its HEALTHCHECK command succeeds against the running server', async () => {
    const health = one(runtime, 'HEALTHCHECK');
    const cmd = execForm(health.slice(health.indexOf('CMD') + 3).trim());
    expect(cmd[0]).toBe('node');
    const port = new URL(image.url).port;
    const args = cmd.slice(1).map((a) => a.replace('127.0.0.1:8080', `127.0.0.1:${port}`));
    const code = await new Promise<number | null>((res) =>
      spawn(process.execPath, args, { stdio: 'ignore' }).on('close', res),
    );
    expect(code).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// deploy/compose/compose.yaml

describe('deploy/compose/compose.yaml', () => {
  const nodes = caxtonNodes(compose);
  const nodeRoot = (name: string) => join(dir, 'compose', name);
  const envOf = (name: string) => nodeEnv(compose.services[name]!, nodeRoot(name));
  const configOf = (name: string) => configFor(envOf(name));

  beforeAll(() => {
    // Each node's /etc/caxton: the image's files, then its bind mounts (cluster.toml) over them.
    for (const [name, svc] of nodes) layOutNode(svc, nodeRoot(name));
  });

  it('parses, with three Caxton nodes built from the Dockerfile as one image, PostgreSQL with pgvector and NATS with JetStream', () => {
    const { postgres, nats } = compose.services;
    expect(nodes.map(([name]) => name)).toEqual(['caxton-a', 'caxton-b', 'caxton-c']);
    for (const [, svc] of nodes) {
      expect(svc.build).toEqual({ context: '../..', dockerfile: 'deploy/docker/Dockerfile' });
      expect(svc.image).toBe('caxton:latest');
      expect(svc.depends_on).toEqual({
        postgres: { condition: 'service_healthy' },
        nats: { condition: 'service_started' },
      });
    }
    expect(postgres?.image).toMatch(/^pgvector\/pgvector:pg\d+$/);
    expect(nats?.image).toMatch(/^nats:/);
    expect(nats?.command).toContain('-js');
  });

  it('gives each node its own data volume and its own published ports, on 127.0.0.1, for the configured ports', () => {
    const volumes = nodes.map(([, svc]) => svc.volumes!.find((v) => v.endsWith(':/var/lib/caxton'))!.split(':')[0]!);
    expect(new Set(volumes).size).toBe(3);
    for (const v of volumes) expect(Object.keys(compose.volumes ?? {})).toContain(v);
    const api: number[] = [];
    const metrics: number[] = [];
    for (const [name, svc] of nodes) {
      const cfg = configOf(name);
      const ports = svc.ports!.map(portMapping);
      for (const p of ports) expect(p.host, `${name} ${p.hostPort}`).toBe('127.0.0.1');
      expect(ports.map((p) => p.containerPort).sort()).toEqual([cfg.server.port, cfg.metrics.port].sort());
      api.push(ports.find((p) => p.containerPort === cfg.server.port)!.hostPort);
      metrics.push(ports.find((p) => p.containerPort === cfg.metrics.port)!.hostPort);
    }
    expect(api).toEqual([8080, 8081, 8082]);
    expect(metrics).toEqual([9090, 9091, 9092]);
    // The header tells how to reach each node: every published API port is in it.
    const header = readFileSync(COMPOSE, 'utf8').split('\nname:')[0]!;
    for (const p of api) expect(header).toContain(`http://127.0.0.1:${p}`);
  });

  it('checks each node on /ready, a path that answers on the live server', async () => {
    for (const [name, svc] of nodes) {
      const cfg = configOf(name);
      const test = svc.healthcheck!.test.join(' ');
      const path = /127\.0\.0\.1:(\d+)(\/\w+)/.exec(test)!;
      expect(Number(path[1]), name).toBe(cfg.server.port);
      expect(path[2], name).toBe('/ready');
    }
    expect(await status(`${image.url}/ready`)).toBe(200);
  });

  it('moves memory to PostgreSQL through url_env, and sets only CAXTON_* variables the loader reads', () => {
    const pg = compose.services.postgres!.environment!;
    const pgUrl = `postgres://${pg.POSTGRES_USER}:${pg.POSTGRES_PASSWORD}@postgres:5432/${pg.POSTGRES_DB}`;
    for (const [name] of nodes) {
      const env = envOf(name);
      const cfg = configFor(env);
      expect(cfg.memory.backend).toBe('postgres');
      const urlEnv = (cfg.memory as { postgres?: { url_env?: string } }).postgres?.url_env;
      expect(urlEnv).toBe('CAXTON_MEMORY_DATABASE_URL');
      expect(env[urlEnv!]).toBe(pgUrl);
      expect(unreadCaxtonVars(env, cfg)).toEqual([]);
    }
  });

  it('makes the three nodes one cluster: distinct names and advertised URLs, one NATS, one cluster.state database and schema', () => {
    const pg = compose.services.postgres!.environment!;
    const clusters = nodes.map(([name]) => {
      const cfg = configOf(name);
      expect(cfg.cluster, `${name}: [cluster]`).toBeDefined();
      return {
        name,
        cluster: cfg.cluster!,
        state: clusterStateConfig(cfg.cluster!, envOf(name)),
        port: cfg.server.port,
      };
    });
    expect(clusters.map((c) => c.cluster.node)).toEqual(['a', 'b', 'c']);
    for (const c of clusters) expect(c.cluster.advertise_url).toBe(`http://${c.name}:${c.port}`);
    for (const c of clusters) expect(c.cluster.nats.urls).toEqual(['nats://nats:4222']);
    expect(new Set(clusters.map((c) => c.state.schema))).toEqual(new Set(['caxton_cluster']));
    for (const c of clusters)
      expect(c.state.url).toBe(
        `postgres://${pg.POSTGRES_USER}:${pg.POSTGRES_PASSWORD}@postgres:5432/${pg.POSTGRES_DB}`,
      );
    for (const key of ['nodes_bucket', 'keys_bucket'] as const)
      expect(new Set(clusters.map((c) => c.cluster[key])).size, key).toBe(1);
    expect(new Set(clusters.map((c) => JSON.stringify(c.cluster.delivery))).size).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// deploy/kubernetes/caxton.yaml

describe('deploy/kubernetes/caxton.yaml', () => {
  const k8sRoot = join(dir, 'k8s');
  const k8sEnv = (): Record<string, string> => ({
    ...Object.fromEntries((container.env ?? []).map((e) => [e.name, mapPaths(e.value, k8sRoot)])),
    ...secret.stringData,
  });

  beforeAll(() => {
    // The ConfigMap mounted at /etc/caxton as the volume's items say.
    const mount = container.volumeMounts.find((m) => m.name === 'config')!.mountPath;
    for (const item of sts.spec.template.spec.volumes.find((v) => v.configMap)!.configMap!.items) {
      const target = join(mapPaths(mount, k8sRoot), item.path);
      mkdirSync(join(target, '..'), { recursive: true });
      writeFileSync(target, configMap.data[item.key]!);
    }
    mkdirSync(join(k8sRoot, 'data'), { recursive: true });
  });

  it('parses into a ConfigMap, Secret, Service, StatefulSet with a volume claim, and ServiceMonitor that refer to each other', () => {
    expect(k8s.map((d) => d.kind).sort()).toEqual([
      'ConfigMap',
      'Secret',
      'Secret',
      'Service',
      'ServiceMonitor',
      'StatefulSet',
    ]);
    expect(sts.spec.volumeClaimTemplates.map((v) => v.metadata.name)).toContain('data');
    expect(container.volumeMounts.find((m) => m.name === 'data')?.mountPath).toBe('/var/lib/caxton');
    const cmVolume = sts.spec.template.spec.volumes.find((v) => v.configMap)!;
    expect(cmVolume.configMap!.name).toBe(configMap.metadata.name);
    for (const item of cmVolume.configMap!.items) expect(Object.keys(configMap.data)).toContain(item.key);
    expect(container.envFrom?.map((e) => e.secretRef?.name)).toContain(secret.metadata.name);
    // Service → named container ports; ServiceMonitor → a named Service port.
    const named = new Map(container.ports.map((p) => [p.name, p.containerPort]));
    for (const p of service.spec.ports) expect(named.get(p.targetPort), p.name).toBe(p.port);
    expect(service.spec.ports.map((p) => p.name)).toContain(monitor.spec.endpoints[0]!.port);
    // The ServiceMonitor's bearer key comes from the second Secret.
    const auth = monitor.spec.endpoints[0]!.authorization!;
    const metricsSecret = ofKind<{ metadata: { name: string }; stringData: Record<string, string> }>('Secret').find(
      (s) => s.metadata.name === auth.credentials.name,
    )!;
    expect(Object.keys(metricsSecret.stringData)).toContain(auth.credentials.key);
  });

  it('every api_key_env of its caxton.toml names a key of the Secret, and every CAXTON_* variable is read', () => {
    const cfg = configFor(k8sEnv());
    const keys = Object.values(cfg.llm.providers).flatMap((p) =>
      (p as { api_key_env?: string }).api_key_env ? [(p as { api_key_env: string }).api_key_env] : [],
    );
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect(Object.keys(secret.stringData)).toContain(k);
    expect(unreadCaxtonVars(k8sEnv(), cfg)).toEqual([]);
  });

  it("starts with the ConfigMap's files and the StatefulSet's env; its probe paths and ports answer", async () => {
    const cfg = configFor(k8sEnv());
    const named = new Map(container.ports.map((p) => [p.name, p.containerPort]));
    expect(named.get('http')).toBe(cfg.server.port);
    expect(named.get('metrics')).toBe(cfg.metrics.port);
    const argv = [...execForm(one(runtime, 'ENTRYPOINT')), ...(container.args ?? execForm(one(runtime, 'CMD')))].map(
      (a) => mapPaths(a, k8sRoot),
    );
    const live = await startLive(argv, k8sEnv());
    const base = (port: string) => (named.get(port) === cfg.metrics.port ? live.metricsUrl : live.url);
    for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe]) {
      if (!probe) continue;
      expect(await status(`${base(probe.httpGet.port)}${probe.httpGet.path}`), probe.httpGet.path).toBe(200);
    }
    const ep = monitor.spec.endpoints[0]!;
    const svcPort = service.spec.ports.find((p) => p.name === ep.port)!;
    // The ServiceMonitor sends a bearer key from a Secret: the metrics port is not on loopback.
    expect(ep.authorization?.type).toBe('Bearer');
    expect(await status(`${base(svcPort.targetPort)}${ep.path}`)).toBe(401);
    const auth = adminAuth(join(k8sRoot, 'data'));
    expect(await status(`${base(svcPort.targetPort)}${ep.path}`, auth)).toBe(200);
    const agents = (await (await fetch(`${live.url}/api/v1/agents`, { headers: auth })).json()) as {
      agents: { name: string }[];
    };
    expect(agents.agents.map((a) => a.name)).toContain('assistant');
    expect(live.output()).not.toContain(secret.stringData.OPENAI_API_KEY!);
  }, 60_000);
});

describe('every YAML file in deploy/', () => {
  it.each(YAML_FILES.map((f) => [f.slice(repoRoot.length + 1), f]))('%s parses', (_name, file) => {
    expect(yamlDocs(file).length).toBeGreaterThan(0);
  });
});
