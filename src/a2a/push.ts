/**
 * Push notifications (docs/a2a.md): a task with configs is followed in the background (the same
 * watch and poll as a stream's, followRun) from the moment a config is set, or from the start of
 * the server for configs stored before, until its run ends. At each change of the task's state
 * every config of the task is sent the task, as the protocol's StreamResponse `{"task": ...}`,
 * POSTed to its URL with its token (X-A2A-Notification-Token), an HMAC-SHA256 signature of the
 * body keyed by that token, and its `authentication` as the Authorization header.
 *
 * Outbound, a webhook is judged as web.fetch's requests are (src/tools/egress.ts): its host
 * against `[a2a] push_allowed_hosts`, then the address the connection uses, so a webhook on a
 * loopback or private address is reached only when an entry names that address. A delivery is
 * bounded in time and retried a bounded number of times with backoff; a webhook that stays down
 * misses that change, not the next one.
 *
 * On a cluster the configs are shared (pg-push-store.ts) and the node running a task's run sends
 * too: a run that changes here is looked up in the store (at most every SHARED_CHECK_MS) and
 * followed when it has configs, so a config set through a node that is down since is still sent.
 * The node that took the config follows the task as well; when that is another node, a webhook may
 * hear one change twice (deliveries are at least once).
 */
import { createHmac } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { A2A_CONTENT_TYPE, StreamResponse } from '@a2a-js/sdk';
import type { DurableRuns, RunWithSteps } from '../execution/index.js';
import type { Logger } from '../observability/index.js';
import { backoffDelay, type BackoffPolicy } from '../shared/backoff.js';
import {
  addressRefusal,
  hostGranted,
  ownListeners,
  parseHostGrants,
  portOfUrl,
  type HostGrant,
} from '../shared/host-grants.js';
import { scrubSecrets } from '../shared/secrets.js';
import { loadUndici } from '../shared/undici.js';
import { egressAgent, egressRefusalOf, literalRefusal } from '../tools/index.js';
import { followRun } from './follow.js';
import type { PushConfig, PushConfigs } from './push-store.js';
import type { Workspace } from '../tools/workspace/index.js';
import { filesArtifact } from './files.js';
import { ENDED, taskOf, waitingCalls } from './tasks.js';

/** The header the protocol names for a config's token. */
export const TOKEN_HEADER = 'X-A2A-Notification-Token';
/** `sha256=<hex>`: HMAC-SHA256, keyed by the config's token, of `<timestamp>.<body>`. */
export const SIGNATURE_HEADER = 'X-Caxton-Signature';
/** Unix seconds when the delivery was signed (inside the signed text: a replay is seen as old). */
export const TIMESTAMP_HEADER = 'X-Caxton-Timestamp';

export interface PushOptions {
  /** The node's SQLite store, or on a cluster the shared PostgreSQL one. */
  store: PushConfigs;
  runs: DurableRuns;
  /** `[a2a] push_allowed_hosts`. */
  allowedHosts: readonly string[];
  logger?: Logger | undefined;
  /** Tries per change (the first and the retries). */
  attempts?: number;
  /** One try's longest time, connecting and answering. */
  timeoutMs?: number;
  backoff?: BackoffPolicy;
  /** The workspace grant, whose files a completed task carries (files.ts). */
  workspace?: Workspace | undefined;
  /** The store is shared by a cluster's nodes: runs running here are followed when another node took their configs. */
  shared?: boolean;
  /** How often, at most, one run running here is looked up in a shared store. */
  sharedCheckMs?: number;
}

export const SHARED_CHECK_MS = 2_000;

export const PUSH_ATTEMPTS = 3;
export const PUSH_TIMEOUT_MS = 10_000;
export const PUSH_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 5_000 };

/** The signature of a delivery: what a webhook recomputes with its token to trust the body. */
export function pushSignature(token: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', token).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** What one followed task's change looks like, to send each state once. */
const changeKey = (got: RunWithSteps): string =>
  got.run.status === 'awaiting_approval'
    ? `${got.run.status}:${waitingCalls(got.steps)
        .map((w) => w.call_id)
        .join(' ')}`
    : got.run.status;

export class PushNotifier {
  readonly #grants: HostGrant[];
  readonly #following = new Map<string, AbortController>();
  readonly #closed = new AbortController();
  readonly #attempts: number;
  readonly #timeoutMs: number;
  readonly #backoff: BackoffPolicy;
  /** With a shared store: when each run running here was last looked up. */
  readonly #lookedUp = new Map<string, number>();
  readonly #checkMs: number;
  readonly #unwatch: (() => void) | undefined;

  constructor(private readonly o: PushOptions) {
    this.#grants = parseHostGrants(o.allowedHosts);
    this.#attempts = o.attempts ?? PUSH_ATTEMPTS;
    this.#timeoutMs = o.timeoutMs ?? PUSH_TIMEOUT_MS;
    this.#backoff = o.backoff ?? PUSH_BACKOFF;
    this.#checkMs = o.sharedCheckMs ?? SHARED_CHECK_MS;
    this.#unwatch = o.shared
      ? o.runs.watch((n) => {
          if (n.type === 'changed') this.#adopt(n.run_id);
        })
      : undefined;
  }

  get store(): PushConfigs {
    return this.o.store;
  }

  /**
   * Why the webhook `raw` may not be reached, or undefined: the rules of every delivery, with the
   * name resolved now (a delivery resolves it again and judges the address it connects to).
   */
  async refusal(raw: string): Promise<string | undefined> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return `"${raw.slice(0, 200)}" is not a URL: expected the webhook's http:// or https:// URL`;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      return `${url.protocol} is not taken: expected the webhook's http:// or https:// URL`;
    if (url.username !== '' || url.password !== '')
      return 'credentials in the URL are not taken: send them as the config\'s "authentication"';
    const port = portOfUrl(url);
    if (!hostGranted(url.hostname, port, this.#grants))
      return `host "${url.hostname}"${url.port !== '' ? ` (port ${port})` : ''} is not in [a2a] push_allowed_hosts in caxton.toml (allowed: ${this.o.allowedHosts.join(', ') || 'none'})`;
    const own = ownListeners();
    const literal = literalRefusal(url.hostname, port, [this.#grants], own);
    if (literal !== undefined) return literal;
    const host = url.hostname.replace(/^\[|\]$/g, '');
    let addrs: { address: string }[];
    try {
      addrs = await lookup(host, { all: true });
    } catch {
      return `host "${url.hostname}" does not resolve`;
    }
    const why = addrs.map((a) => addressRefusal(a.address, port, [this.#grants], own));
    return why.every((w) => w !== undefined) ? `${url.hostname} resolves to ${why[0] ?? 'nothing'}` : undefined;
  }

  /** Follows the task in the background (once), sending its changes to its configs until it ends. */
  follow(taskId: string): void {
    if (this.#closed.signal.aborted || this.#following.has(taskId)) return;
    const stop = new AbortController();
    this.#following.set(taskId, stop);
    const release = (): void => {
      if (this.#following.get(taskId) === stop) this.#following.delete(taskId);
    };
    void this.#follow(taskId, AbortSignal.any([stop.signal, this.#closed.signal]), release)
      .catch((e: unknown) => this.o.logger?.warn({ err: e, task: taskId }, 'a2a push: following the task failed'))
      .finally(release);
  }

  /**
   * Follows again the tasks whose configs were stored before (those not ended yet send their next
   * changes). With a shared store only the configs of gone runs are dropped: the node that runs a
   * task follows it, not every node that starts.
   */
  async resume(): Promise<void> {
    for (const id of await this.o.store.tasks()) {
      const got = await this.o.runs.journal.get(id);
      if (got === undefined) await this.o.store.dropTask(id);
      else if (!ENDED.has(got.run.status) && this.o.shared !== true) this.follow(id);
    }
  }

  close(): void {
    this.#closed.abort();
    this.#unwatch?.();
  }

  /** A run changed here: followed if the shared store holds configs for it (another node may have taken them). */
  #adopt(id: string): void {
    if (this.#closed.signal.aborted || this.#following.has(id)) return;
    const now = Date.now();
    const at = this.#lookedUp.get(id);
    if (at !== undefined && now - at < this.#checkMs) return;
    if (this.#lookedUp.size >= 1_000)
      for (const [k, t] of this.#lookedUp) if (now - t >= this.#checkMs) this.#lookedUp.delete(k);
    this.#lookedUp.set(id, now);
    this.o.store.forTask(id).then(
      (configs) => {
        if (configs.length > 0) this.follow(id);
      },
      (e: unknown) => this.o.logger?.warn({ err: e, task: id }, 'a2a push: the task’s configs could not be read'),
    );
  }

  /** `release` is called as the last config is found gone, so that a config set next starts a follower again. */
  async #follow(taskId: string, signal: AbortSignal, release: () => void): Promise<void> {
    let last = '';
    for await (const got of followRun(this.o.runs, taskId, signal, (g) => ENDED.has(g.run.status))) {
      const key = changeKey(got);
      if (key === last) continue;
      last = key;
      const configs = await this.o.store.forTask(taskId);
      if (configs.length === 0) return release();
      // The protocol's StreamResponse as JSON; scrubbed of configured secrets, as every exit is (ADR 0017).
      const body = scrubSecrets(
        JSON.stringify(
          StreamResponse.toJSON({
            payload: {
              $case: 'task',
              value: taskOf(got.run, got.steps, undefined, filesArtifact(this.o.workspace, got.run, got.steps)),
            },
          }),
        ),
      );
      await Promise.all(configs.map((c) => this.#deliver(c, body, signal)));
    }
  }

  /** Sends `body` to one config, retried with backoff; answers whether it was taken. */
  async #deliver(c: PushConfig, body: string, signal: AbortSignal): Promise<boolean> {
    let why = '';
    for (let attempt = 0; attempt < this.#attempts && !signal.aborted; attempt++) {
      if (attempt > 0) {
        try {
          await sleep(backoffDelay(attempt - 1, this.#backoff), undefined, { signal });
        } catch {
          return false;
        }
      }
      const r = await this.#post(c, body, signal);
      if (r.ok) return true;
      why = r.why;
      if (r.final) break;
    }
    this.o.logger?.warn(
      { task: c.taskId, config: c.id, host: hostOf(c.url), reason: why },
      'a2a push: the webhook did not take the notification',
    );
    return false;
  }

  async #post(
    c: PushConfig,
    body: string,
    signal: AbortSignal,
  ): Promise<{ ok: true } | { ok: false; why: string; final: boolean }> {
    const url = new URL(c.url);
    const port = portOfUrl(url);
    if (!hostGranted(url.hostname, port, this.#grants))
      return { ok: false, why: 'host not in [a2a] push_allowed_hosts', final: true };
    const own = ownListeners();
    const literal = literalRefusal(url.hostname, port, [this.#grants], own);
    if (literal !== undefined) return { ok: false, why: literal, final: true };
    const undici = await loadUndici();
    const dispatcher = egressAgent(undici, port, [this.#grants], own, this.#timeoutMs);
    const timestamp = String(Math.floor(Date.now() / 1000));
    const headers: Record<string, string> = {
      'content-type': A2A_CONTENT_TYPE,
      'user-agent': 'Caxton A2A push',
      [TIMESTAMP_HEADER]: timestamp,
    };
    if (c.token !== '') {
      headers[TOKEN_HEADER] = c.token;
      headers[SIGNATURE_HEADER] = pushSignature(c.token, timestamp, body);
    }
    if (c.authScheme !== '') headers.authorization = `${c.authScheme} ${c.authCredentials}`;
    try {
      const res = await undici.fetch(url, {
        method: 'POST',
        redirect: 'manual',
        headers,
        body,
        dispatcher,
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.#timeoutMs)]),
      });
      await res.body?.cancel().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return { ok: true };
      return { ok: false, why: `HTTP ${res.status}`, final: false };
    } catch (e) {
      const refused = egressRefusalOf(e);
      if (refused !== undefined) return { ok: false, why: refused.message, final: true };
      const err = e as Error & { cause?: { message?: string } };
      return { ok: false, why: err.cause?.message ?? err.message, final: false };
    } finally {
      void dispatcher.close().catch(() => undefined);
    }
  }
}

function hostOf(raw: string): string {
  try {
    return new URL(raw).host;
  } catch {
    return '';
  }
}
