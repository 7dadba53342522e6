/**
 * The MCP conformance suite's client under test (`conformance client --command "node
 * test/mcp/conformance/client.mjs" --scenario NAME`): Caxton's own MCP client code (dist/mcp:
 * McpClientManager, the OAuth provider, an in-memory token store) mounting the suite's test server
 * at the URL it appends as the last argument, then doing what the scenario asks
 * ($MCP_CONFORMANCE_SCENARIO; $MCP_CONFORMANCE_CONTEXT holds pre-registered client credentials).
 *
 * The person of the authorization_code flow is automatic here: the suite's authorization servers
 * approve at once and redirect to the redirect URI with the code, so the client fetches the
 * authorization URL without following the redirect and hands code and state to
 * `completeLogin` (what `caxton mcp login` does through the running server). Needs `npm run build`.
 */
import { McpClientManager } from '../../../dist/mcp/mcp-client.js';
import { MemoryOAuthStore } from '../../../dist/mcp/oauth.js';
import { ToolRegistry } from '../../../dist/tools/tool-registry.js';

const url = process.argv.at(-1);
const scenario = process.env.MCP_CONFORMANCE_SCENARIO ?? '';
const context = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT ?? '{}');
const REDIRECT_PORT = 33419;
const log = (...a) => process.stderr.write(`[caxton-conformance] ${a.join(' ')}\n`);

const env = {};
let oauth;
if (scenario.startsWith('auth/')) {
  oauth = {
    grant: scenario.startsWith('auth/client-credentials') ? 'client_credentials' : 'authorization_code',
    scopes: [],
    client_name: 'caxton-conformance',
  };
  if (context.client_id) {
    oauth.client_id = context.client_id;
    oauth.redirect_port = REDIRECT_PORT;
  }
  if (context.client_secret) {
    oauth.client_secret_env = 'CONFORMANCE_CLIENT_SECRET';
    env.CONFORMANCE_CLIENT_SECRET = context.client_secret;
  }
}

const tools = new ToolRegistry();
const mcp = new McpClientManager({
  tools,
  servers: {
    conformance: { url, args: [], env: {}, headers: {}, timeout: 10_000, enabled: true, ...(oauth && { oauth }) },
  },
  oauthStore: new MemoryOAuthStore(),
  env,
  pingIntervalMs: 0,
  backoff: { baseMs: 200, maxMs: 1000 },
});
// The connection exists once start() has begun (it loads the MCP SDK then).
const conn = () => mcp.connection('conformance');
const status = () => mcp.status('conformance');

/**
 * Waits until the connection is ready or waits for a person, or has failed the same way three
 * times: a refusal the client keeps meeting (a resource that does not match, say) is the answer,
 * and the suite's clock keeps running while the supervisor backs off.
 */
async function settled(ms = 10_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const st = status();
    const s = st.state;
    if (s === 'ready' || s === 'needs_authorization') return s;
    if (s === 'failed' && st.attempts >= 3) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
  return status().state;
}

/** What `caxton mcp login` does, with the suite's authorization server approving at once. */
async function login() {
  const r = await conn().startLogin(`http://127.0.0.1:${REDIRECT_PORT}/callback`);
  if ('authorization_url' in r) {
    log('authorization URL', r.authorization_url);
    const res = await fetch(r.authorization_url, { redirect: 'manual' });
    const location = res.headers.get('location');
    if (!location) throw new Error(`the authorization endpoint answered ${res.status} without a redirect`);
    const back = new URL(location);
    await conn().completeLogin(back.searchParams.get('code') ?? '', back.searchParams.get('state') ?? '');
  }
  return settled();
}

const ctx = () => ({
  agent: 'conformance',
  execution_id: 'exec_conformance',
  deadline: Date.now() + 10_000,
  signal: new AbortController().signal,
});
const ARGS = { add_numbers: { a: 5, b: 3 } };

let code = 0;
try {
  await mcp.start();
  let state = await settled();
  for (let i = 0; state === 'needs_authorization' && i < 3; i++) state = await login();
  log('state', state, status().last_error ?? '');
  for (const full of status().tool_names) {
    const name = full.slice('conformance.'.length);
    let r = await tools.invoke([full], full, ARGS[name] ?? {}, ctx());
    if (r.is_error && status().state === 'needs_authorization') {
      await login();
      r = await tools.invoke([full], full, ARGS[name] ?? {}, ctx());
    }
    log('tool', name, r.is_error ? 'error' : 'ok', r.content.slice(0, 200));
  }
  if (status().state !== 'ready') code = 1;
} catch (e) {
  log('failed:', e instanceof Error ? e.message : String(e));
  code = 1;
} finally {
  await mcp.close();
}
process.exit(code);
