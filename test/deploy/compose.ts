/**
 * deploy/compose/compose.yaml and the image's layout, read for the offline checks of test/deploy:
 * the services (YAML merge keys resolved, as docker compose resolves them), the Caxton nodes among
 * them, and the files and environment a node's configuration loader sees inside its container —
 * /etc/caxton as the Dockerfile's COPY lines lay it out, the node's bind mounts over it, the
 * image's ENV, then the service's environment — recreated under a temp dir.
 */
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../helpers/fixtures.js';
import { envPairs, parseDockerfile, stages } from './dockerfile.js';

export const DOCKERFILE = join(repoRoot, 'deploy/docker/Dockerfile');
export const COMPOSE = join(repoRoot, 'deploy/compose/compose.yaml');

type Obj = Record<string, unknown>;

/** Every document of a YAML file; merge keys (`<<: *anchor`) resolved; a parse error throws. */
export function yamlDocs(file: string): Obj[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'), { merge: true });
  if (!Array.isArray(docs)) throw new Error(`${file}: empty`);
  for (const d of docs)
    if (d.errors.length > 0) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
  return docs.map((d) => d.toJS() as Obj).filter((d) => d !== null);
}

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string | number | boolean>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  command?: string[];
}
export interface Compose {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

export const readCompose = (): Compose => yamlDocs(COMPOSE)[0] as unknown as Compose;

/** The services built from the Caxton Dockerfile, by name. */
export function caxtonNodes(c: Compose): [string, ComposeService][] {
  return Object.entries(c.services)
    .filter(([, s]) => s.build?.dockerfile === 'deploy/docker/Dockerfile')
    .sort(([a], [b]) => a.localeCompare(b));
}

/** Container paths of the image → `root` here (the image's layout, recreated). */
export function mapPaths(v: string, root: string): string {
  return v
    .replaceAll('/opt/caxton', repoRoot)
    .replaceAll('/etc/caxton', join(root, 'etc'))
    .replaceAll('/var/lib/caxton', join(root, 'data'));
}

const runtime = () => stages(parseDockerfile(readFileSync(DOCKERFILE, 'utf8'))).at(-1)!;

/** The image's /etc/caxton (its COPY lines from the build context) and an empty data dir, under `root`. */
export function layOutImage(root: string): void {
  mkdirSync(join(root, 'etc'), { recursive: true });
  mkdirSync(join(root, 'data'), { recursive: true });
  for (const ins of runtime().instructions.filter((i) => i.name === 'COPY' && !i.args.startsWith('--from'))) {
    const [src, dest] = ins.args.split(/\s+/) as [string, string];
    cpSync(join(repoRoot, src), mapPaths(dest, root), { recursive: true });
  }
}

/** The runtime stage's ENV, paths mapped under `root`. */
export function imageEnvAt(root: string): Record<string, string> {
  const env = runtime()
    .instructions.filter((i) => i.name === 'ENV')
    .map((i) => envPairs(i.args));
  return Object.fromEntries(
    Object.entries(Object.assign({}, ...env) as Record<string, string>).map(([k, v]) => [k, mapPaths(v, root)]),
  );
}

/** A service's bind mounts (`./file:/container/path[:ro]`): the file here and its path in the container. */
export function bindMounts(s: ComposeService): { source: string; target: string }[] {
  return (s.volumes ?? [])
    .filter((v) => v.startsWith('.') || v.startsWith('/'))
    .map((v) => {
      const [source, target] = v.split(':') as [string, string];
      return { source: resolve(dirname(COMPOSE), source), target };
    });
}

/** `root` laid out as the node's container sees it: the image's files, then its bind mounts over them. */
export function layOutNode(s: ComposeService, root: string): void {
  layOutImage(root);
  for (const m of bindMounts(s)) {
    if (!existsSync(m.source)) throw new Error(`bind mount ${m.source} does not exist`);
    const target = mapPaths(m.target, root);
    mkdirSync(dirname(target), { recursive: true });
    cpSync(m.source, target, { recursive: true });
  }
}

/** The node's environment: the image's ENV, then the service's `environment`, paths mapped under `root`. */
export function nodeEnv(s: ComposeService, root: string): Record<string, string> {
  const own = Object.entries(s.environment ?? {}).map(([k, v]) => [k, mapPaths(String(v), root)]);
  return { ...imageEnvAt(root), ...Object.fromEntries(own) };
}

/** `127.0.0.1:8081:8080` → host address, host port, container port. */
export function portMapping(p: string): { host: string; hostPort: number; containerPort: number } {
  const parts = p.split(':');
  return {
    host: parts.length === 3 ? parts[0]! : '0.0.0.0',
    hostPort: Number(parts.at(-2)),
    containerPort: Number(parts.at(-1)),
  };
}
