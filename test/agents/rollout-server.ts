/**
 * A real server for the rollout suites (blue-green, canary, shadow): authentication on, the
 * scripted provider reading `replies.toml` from the test's folder, and an admin client for the
 * REST API and the built CLI. `start()` (re)starts it on the same folder, so a suite can restart
 * the server part-way and keep its data.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { http, type HttpResult } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { runCli } from '../cli/helpers/cli.js';

/** caxton.toml: authentication, and the scripted provider as the default. */
export const SCRIPTED_AUTH_TOML = `
[auth]
enabled = true

[llm]
default_provider = "demo"

[llm.providers.demo]
type = "scripted"
script = "replies.toml"
`;

export class RolloutServer {
  srv!: TestServer;
  #admin = '';

  constructor(
    readonly dir: string,
    private readonly toml: () => string = () => SCRIPTED_AUTH_TOML,
  ) {}

  async start(): Promise<void> {
    this.srv = await startTestServer({ dir: this.dir, toml: this.toml() });
    this.#admin = readFileSync(join(this.srv.dataDir, 'admin.key'), 'utf8').trim();
  }

  /** A request as the admin; bodies default to TOML (an agent definition). */
  api<T = unknown>(
    method: string,
    path: string,
    body?: string,
    contentType = 'application/toml',
  ): Promise<HttpResult<T>> {
    return http<T>(this.srv.url, method, path, {
      headers: { authorization: `Bearer ${this.#admin}` },
      ...(body !== undefined && { body, contentType }),
    });
  }

  /** The built CLI against this server, as the admin, in the test's folder. */
  cli(...args: string[]): ReturnType<typeof runCli> {
    return runCli(['--server', this.srv.url, ...args], { cwd: this.dir, env: { CAXTON_API_KEY: this.#admin } });
  }

  close(): Promise<void> {
    return this.srv?.close() ?? Promise.resolve();
  }
}
