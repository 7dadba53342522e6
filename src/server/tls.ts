import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import type { FSWatcher } from 'chokidar';
import { ConfigError } from '../config/index.js';
import type { Logger } from '../observability/index.js';
import type { SourceIssue } from '../shared/issues.js';
import type { TlsConfig } from './tls-config.js';

export { isLoopbackHost } from './hosts.js';

/**
 * TLS for the API port and the metrics port (ADR 0022): the files of `[server.tls]` /
 * `[metrics.tls]` are checked at start (an error names the file and says what to do) and watched
 * afterwards; a changed, valid set replaces the server's secure context for new connections, a
 * bad one is logged and the running one kept.
 */

/** A PEM file is a few KB; anything this large is the wrong file. */
const MAX_PEM_BYTES = 1024 * 1024;
/** Writers replace a certificate and its key as two files: wait for both before reloading. */
const RELOAD_DEBOUNCE_MS = 250;

/** The checked contents of a TLS section's files. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  /** The server certificate's serial number (hex) and validity, for logs and status. */
  serial: string;
  subject: string;
  validTo: Date;
}

/** Where a TLS section stands, for tests and status. */
export interface TlsStatus {
  section: string;
  serial: string;
  subject: string;
  valid_to: string;
  loaded_at: string;
  reloads: number;
  /** The last reload attempt that failed (the running certificate was kept), if the last attempt failed. */
  last_error?: string;
}

/** An error from checking a TLS file: names the file and the field, says what to do. */
class TlsFileProblem extends Error {
  constructor(readonly issue: SourceIssue) {
    super(`${issue.file}: ${issue.message}${issue.suggestion ? ` (${issue.suggestion})` : ''}`);
  }
}

type Field = 'cert' | 'key' | 'ca';
const WHAT: Record<Field, string> = {
  cert: 'TLS certificate file',
  key: 'TLS private key file',
  ca: 'TLS client CA file',
};

function problem(
  section: string,
  field: Field,
  file: string,
  code: string,
  message: string,
  suggestion: string,
): TlsFileProblem {
  return new TlsFileProblem({ severity: 'error', code, file, field: `${section}.${field}`, message, suggestion });
}

function readPem(section: string, field: Field, file: string): Buffer {
  const what = WHAT[field];
  let bytes: Buffer;
  try {
    const st = statSync(file);
    if (st.isDirectory())
      throw problem(
        section,
        field,
        file,
        'tls_file_unreadable',
        `the ${what} is a directory`,
        `set ${field} to the path of a PEM file`,
      );
    if (st.size > MAX_PEM_BYTES)
      throw problem(
        section,
        field,
        file,
        'tls_not_pem',
        `the ${what} is ${st.size} bytes: too large to be a PEM file`,
        `set ${field} to the PEM file`,
      );
    bytes = readFileSync(file);
  } catch (e) {
    if (e instanceof TlsFileProblem) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw problem(
        section,
        field,
        file,
        'tls_file_missing',
        `the ${what} does not exist`,
        `check [${section}] ${field} (a relative path is relative to caxton.toml)`,
      );
    throw problem(
      section,
      field,
      file,
      'tls_file_unreadable',
      `the ${what} cannot be read (${code ?? String(e)})`,
      'give the user running caxton read access to it',
    );
  }
  const text = bytes.toString('latin1');
  if (!text.includes('-----BEGIN ')) {
    const der = bytes[0] === 0x30;
    throw problem(
      section,
      field,
      file,
      'tls_not_pem',
      `the ${what} is not PEM${der ? ' (it looks like DER)' : ''}`,
      field === 'key'
        ? `convert it with \`openssl pkey -in ${file} -out key.pem\`${der ? ' -inform der' : ''}, or point key at the PEM file`
        : `convert it with \`openssl x509 -in ${file} -out cert.pem\`${der ? ' -inform der' : ''}, or point ${field} at the PEM file`,
    );
  }
  return bytes;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function parseCerts(section: string, field: Field, file: string, bytes: Buffer): X509Certificate[] {
  const blocks = bytes.toString('latin1').match(CERT_BLOCK) ?? [];
  if (blocks.length === 0) {
    const isKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(bytes.toString('latin1'));
    throw problem(
      section,
      field,
      file,
      'tls_not_pem',
      `the ${WHAT[field]} holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" block)${isKey ? ': it holds a private key' : ''}`,
      isKey ? 'swap the cert and key paths' : `point ${field} at the PEM certificate file`,
    );
  }
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw problem(
        section,
        field,
        file,
        'tls_not_pem',
        `certificate ${i + 1} in the ${WHAT[field]} cannot be parsed (${e instanceof Error ? e.message : String(e)})`,
        'replace it with a valid PEM certificate',
      );
    }
  });
}

function parseKey(section: string, file: string, bytes: Buffer): KeyObject {
  const text = bytes.toString('latin1');
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) {
    throw problem(
      section,
      'key',
      file,
      'tls_key_encrypted',
      'the TLS private key file is encrypted with a passphrase',
      `store it unencrypted, readable by the user running caxton only: \`openssl pkey -in ${file} -out key.pem\` then \`chmod 600 key.pem\``,
    );
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    const isCert = text.includes('-----BEGIN CERTIFICATE-----');
    throw problem(
      section,
      'key',
      file,
      'tls_not_pem',
      `the TLS private key file holds no PEM private key${isCert ? ': it holds a certificate' : ''}`,
      isCert ? 'swap the cert and key paths' : 'point key at the PEM private key file',
    );
  }
  try {
    return createPrivateKey(bytes);
  } catch (e) {
    throw problem(
      section,
      'key',
      file,
      'tls_not_pem',
      `the TLS private key file cannot be parsed (${e instanceof Error ? e.message : String(e)})`,
      'replace it with a valid PEM private key',
    );
  }
}

/** Reads and checks a TLS section's files; throws TlsFileProblem. */
function loadMaterial(cfg: TlsConfig, section: string): TlsMaterial {
  const certBytes = readPem(section, 'cert', cfg.cert);
  const keyBytes = readPem(section, 'key', cfg.key);
  const caBytes = cfg.ca !== undefined ? readPem(section, 'ca', cfg.ca) : undefined;
  const [leaf] = parseCerts(section, 'cert', cfg.cert, certBytes);
  const key = parseKey(section, cfg.key, keyBytes);
  if (caBytes) parseCerts(section, 'ca', cfg.ca!, caBytes);
  if (!leaf!.checkPrivateKey(key)) {
    throw problem(
      section,
      'key',
      cfg.key,
      'tls_key_mismatch',
      `the TLS private key does not belong to the certificate in ${cfg.cert}`,
      'use the key the certificate was issued for (the certificate must come first in the cert file), or replace both together',
    );
  }
  try {
    // What the TLS layer itself refuses (a key too weak for OpenSSL's security level, for one).
    createSecureContext({
      cert: certBytes,
      key: keyBytes,
      ...(caBytes && { ca: caBytes }),
      minVersion: cfg.min_version,
    });
  } catch (e) {
    throw problem(
      section,
      'cert',
      cfg.cert,
      'tls_refused',
      `the TLS certificate and key are refused by OpenSSL (${e instanceof Error ? e.message : String(e)})`,
      'issue a certificate with a stronger key (RSA 2048 bits or more, or ECDSA P-256)',
    );
  }
  return {
    cert: certBytes,
    key: keyBytes,
    ...(caBytes && { ca: caBytes }),
    serial: leaf!.serialNumber,
    subject: leaf!.subject,
    validTo: new Date(leaf!.validTo),
  };
}

/**
 * The checked files of `[server.tls]` or `[metrics.tls]`, at start: a ConfigError naming the file
 * (missing, unreadable, not PEM, encrypted, key not matching the certificate) stops the start.
 */
export function readTlsMaterial(cfg: TlsConfig, section: 'server.tls' | 'metrics.tls'): TlsMaterial {
  try {
    return loadMaterial(cfg, section);
  } catch (e) {
    if (e instanceof TlsFileProblem) throw new ConfigError([e.issue]);
    throw e;
  }
}

/** Options for `https.createServer` / `Fastify({ https })`. */
export function httpsOptions(cfg: TlsConfig, m: TlsMaterial): HttpsServerOptions {
  return {
    cert: m.cert,
    key: m.key,
    ...(m.ca && { ca: m.ca }),
    minVersion: cfg.min_version,
    // "optional" asks for a certificate but lets the connection through without a valid one: the
    // request then carries no certificate principal (verifiedCertificateOf in src/auth/plugin.ts checks `authorized`).
    requestCert: cfg.client_auth !== 'none',
    rejectUnauthorized: cfg.client_auth === 'require',
  };
}

/**
 * Watches a TLS section's files and replaces the server's secure context when they change. The
 * directories are watched, not the files: certificate tools (certbot, cert-manager's projected
 * volumes) replace files by rename or by swapping a symlinked directory, which a watch on the
 * file itself misses. Any change in them re-reads the files; identical contents change nothing.
 */
export class TlsReloader {
  readonly #server: TlsServer;
  readonly #cfg: TlsConfig;
  readonly #section: string;
  readonly #log: Logger;
  #current: TlsMaterial;
  #loadedAt = new Date();
  #reloads = 0;
  #lastError: string | undefined;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(server: TlsServer, cfg: TlsConfig, section: string, material: TlsMaterial, log: Logger) {
    this.#server = server;
    this.#cfg = cfg;
    this.#section = section;
    this.#current = material;
    this.#log = log;
  }

  async start(): Promise<void> {
    const files = [this.#cfg.cert, this.#cfg.key, ...(this.#cfg.ca !== undefined ? [this.#cfg.ca] : [])];
    const dirs = [...new Set(files.map((f) => dirname(f)))];
    // Loaded here, not at import: a server without TLS never needs the watcher.
    const { watch } = await import('chokidar');
    const watcher = watch(dirs, { ignoreInitial: true, depth: 0 });
    watcher.on('all', () => this.#schedule());
    watcher.on('error', (e) =>
      this.#log.error(
        { err: e, section: this.#section },
        'TLS file watcher error: certificate changes may not be picked up until a restart',
      ),
    );
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    if (this.#closed) await watcher.close();
    else this.#watcher = watcher;
  }

  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.reload();
    }, RELOAD_DEBOUNCE_MS);
  }

  /** Re-reads the files now; true when a new certificate is in use. Never throws. */
  reload(): boolean {
    let next: TlsMaterial;
    try {
      next = loadMaterial(this.#cfg, this.#section);
    } catch (e) {
      const issue = e instanceof TlsFileProblem ? e.issue : undefined;
      this.#lastError = e instanceof Error ? e.message : String(e);
      this.#log.error(
        {
          section: this.#section,
          file: issue?.file,
          field: issue?.field,
          code: issue?.code,
          serial: this.#current.serial,
        },
        `TLS files not reloaded: ${this.#lastError}; the running certificate (serial ${this.#current.serial}) is kept`,
      );
      return false;
    }
    const c = this.#current;
    if (
      next.cert.equals(c.cert) &&
      next.key.equals(c.key) &&
      (next.ca?.equals(c.ca ?? Buffer.alloc(0)) ?? c.ca === undefined)
    ) {
      this.#lastError = undefined;
      return false;
    }
    try {
      this.#server.setSecureContext(httpsOptions(this.#cfg, next));
    } catch (e) {
      this.#lastError = `${this.#cfg.cert}: ${e instanceof Error ? e.message : String(e)}`;
      this.#log.error(
        { section: this.#section, file: this.#cfg.cert, serial: c.serial },
        `TLS files not reloaded: ${this.#lastError}; the running certificate is kept`,
      );
      return false;
    }
    this.#current = next;
    this.#loadedAt = new Date();
    this.#reloads++;
    this.#lastError = undefined;
    this.#log.info(
      {
        section: this.#section,
        serial: next.serial,
        previous_serial: c.serial,
        subject: next.subject,
        valid_to: next.validTo.toISOString(),
      },
      'TLS certificate reloaded: new connections use it',
    );
    warnIfExpiring(this.#log, this.#section, next);
    return true;
  }

  status(): TlsStatus {
    const c = this.#current;
    return {
      section: this.#section,
      serial: c.serial,
      subject: c.subject,
      valid_to: c.validTo.toISOString(),
      loaded_at: this.#loadedAt.toISOString(),
      reloads: this.#reloads,
      ...(this.#lastError !== undefined && { last_error: this.#lastError }),
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#watcher?.close();
  }
}

/** A server certificate that has expired (or soon will) is served all the same, but said loudly. */
export function warnIfExpiring(log: Logger, section: string, m: TlsMaterial, now = Date.now()): void {
  const left = m.validTo.getTime() - now;
  if (left <= 0)
    log.error(
      { section, serial: m.serial, valid_to: m.validTo.toISOString() },
      `the [${section}] certificate has expired: clients will refuse it until it is replaced`,
    );
  else if (left < 14 * 24 * 3_600_000)
    log.warn(
      { section, serial: m.serial, valid_to: m.validTo.toISOString() },
      `the [${section}] certificate expires in ${Math.ceil(left / (24 * 3_600_000))} days`,
    );
}
