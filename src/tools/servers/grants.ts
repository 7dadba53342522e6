/**
 * What a tool server may reach: the intersection of what its manifest asks for and what the
 * operator grants (`ToolServerGrants`). A grant the other side does not match is a
 * warning (the access is refused when used); a granted directory or database that cannot be used,
 * or a required configuration value not given, refuses the server.
 */
import type { CaxtonError } from '../../shared/errors.js';
import { resolveHostRoot, type PathRoot } from './fs-access.js';
import type { ToolLimits, ToolManifest } from './manifest.js';
import { resolveDatabaseRoot, type DatabaseRoot } from './sqlite-access.js';

/** What the operator grants a tool server (server configuration). Nothing is granted by default. */
export interface ToolServerGrants {
  /** Hosts the server may reach; a request must match both these and the manifest's. */
  allowed_hosts?: string[];
  /** Guest-side root (as declared in the manifest) → host directory. */
  paths?: Record<string, string>;
  /**
   * Guest-side database path (as declared in the manifest's `databases`) → host SQLite file, or
   * directory whose files may all be queried. Always read-only.
   */
  databases?: Record<string, string>;
  /** Values for the configuration keys the manifest declares. */
  config?: Record<string, string>;
  /** Upper bounds: the effective limit is the smaller of this and the manifest's. */
  limits?: Partial<ToolLimits>;
}

export interface ResolvedGrants {
  /** The hosts the manifest asks for, and those the operator grants: a request must match both. */
  mHosts: readonly string[];
  opHosts: readonly string[];
  roots: PathRoot[];
  dbRoots: DatabaseRoot[];
  /** Declared configuration keys with their values: the operator's over the manifest's defaults. */
  config: Map<string, string>;
}

/**
 * Matches `g` against `manifest`. `warn` records a grant that does not apply; `fail` makes the
 * error (naming the field) that refuses the server.
 */
export function resolveGrants(
  manifest: ToolManifest,
  g: ToolServerGrants,
  warn: (field: string, message: string) => void,
  fail: (message: string, details?: Record<string, unknown>) => CaxtonError,
): ResolvedGrants {
  // Hosts: the manifest asks, the operator grants; both must match.
  const opHosts = g.allowed_hosts ?? [];
  const mHosts = manifest.permissions.allowed_hosts;
  if (mHosts.length > 0 && opHosts.length === 0)
    warn(
      'permissions.allowed_hosts',
      `the package asks for HTTP to ${mHosts.join(', ')}, which the operator has not granted: its HTTP requests will be refused`,
    );

  // Paths: a manifest root is usable only when the operator maps it to a host directory.
  const roots: PathRoot[] = [];
  for (const [guest, access] of Object.entries(manifest.permissions.paths)) {
    const hostDir = g.paths?.[guest];
    if (hostDir === undefined) {
      warn(
        `permissions.paths.${guest}`,
        `the package asks for ${guest} (${access}), which the operator has not mapped to a directory: access to it will be refused`,
      );
      continue;
    }
    try {
      roots.push({ guest, host: resolveHostRoot(hostDir), access });
    } catch (e) {
      throw fail(`the directory granted for ${guest} is unusable: ${(e as Error).message}`, {
        field: `permissions.paths.${guest}`,
      });
    }
  }
  for (const guest of Object.keys(g.paths ?? {})) {
    if (!(guest in manifest.permissions.paths))
      warn(`permissions.paths`, `the operator maps ${guest}, which the package does not declare: ignored`);
  }

  // Databases: like paths, declared by the manifest and mapped by the operator (file or directory).
  const dbRoots: DatabaseRoot[] = [];
  for (const guest of manifest.permissions.databases) {
    const hostPath = g.databases?.[guest];
    if (hostPath === undefined) {
      warn(
        `permissions.databases`,
        `the package asks for database ${guest}, which the operator has not mapped to a file or directory: queries on it will be refused`,
      );
      continue;
    }
    try {
      dbRoots.push(resolveDatabaseRoot(guest, hostPath));
    } catch (e) {
      throw fail(`the database path granted for ${guest} is unusable: ${(e as Error).message}`, {
        field: 'permissions.databases',
      });
    }
  }
  for (const guest of Object.keys(g.databases ?? {})) {
    if (!manifest.permissions.databases.includes(guest))
      warn('permissions.databases', `the operator maps database ${guest}, which the package does not declare: ignored`);
  }

  // Config: declared keys only; operator values over manifest defaults.
  const config = new Map<string, string>();
  for (const [key, decl] of Object.entries(manifest.config)) {
    const v = g.config?.[key] ?? decl.default;
    if (v === undefined) {
      if (decl.required)
        throw fail(
          `configuration value "${key}" is required by the package and was not given${decl.description ? ` (${decl.description})` : ''}`,
          { field: `config.${key}` },
        );
      continue;
    }
    config.set(key, v);
  }
  for (const key of Object.keys(g.config ?? {}))
    if (!(key in manifest.config))
      warn('config', `configuration value "${key}" is not declared by the package: ignored`);
  return { mHosts, opHosts, roots, dbRoots, config };
}
