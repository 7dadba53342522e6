import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ROLE_SUMMARY, ROLES, type ApiKeyInfo, type SigningKeyInfo } from '../../auth/index.js';
import { ApiClient } from '../api-client.js';
import type { CliContext } from '../context.js';
import { credentialsFile, removeProfile, writeProfile } from '../credentials.js';
import { CliError, usageError } from '../errors.js';
import { table } from '../output.js';
import { positiveInt } from '../number-flags.js';
import { describeServerSource, normalizeServerUrl } from '../server-url.js';

const list = (v: string, prev: string[] = []) => [
  ...prev,
  ...v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

function role(v: string): string {
  if (!(ROLES as readonly string[]).includes(v))
    throw usageError(`unknown role "${v}"; expected one of: ${ROLES.join(', ')}`);
  return v;
}

function scopeText(k: ApiKeyInfo): string {
  const parts = Object.entries(k.scope)
    .filter(([, v]) => v !== undefined)
    .map(([n, v]) => `${n}=${(v as string[]).join(',')}`);
  return parts.length > 0 ? parts.join(' ') : 'all';
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

const ROLE_HELP = `\nRoles:\n${ROLES.map((r) => `  ${r.padEnd(10)} ${ROLE_SUMMARY[r]}`).join('\n')}`;

/** caxton key ..., login, logout, whoami. */
export function registerKeyCommands(program: Command, ctx: CliContext): void {
  const key = program
    .command('key')
    .description('API keys: create, list, show, revoke, rotate; message signing keys (role admin)')
    .addHelpText('after', ROLE_HELP);

  registerKeyCreate(key, ctx);
  registerKeyList(key, ctx);
  registerKeyShow(key, ctx);
  registerKeyRevoke(key, ctx);
  registerKeyRotate(key, ctx);
  registerKeySigning(key, ctx);
  registerKeyRegisterSigning(key, ctx);
  registerLogin(program, ctx);
  registerLogout(program, ctx);
}

/** `caxton key create`. */
function registerKeyCreate(key: Command, ctx: CliContext): void {
  key
    .command('create')
    .description('create an API key; its secret is printed once and never again')
    .requiredOption('--name <name>', 'a unique name, e.g. "ci"')
    .requiredOption('--role <role>', `one of ${ROLES.join(', ')}`, role)
    .option('--expires <duration>', 'time to live, e.g. 30d or 12h (default: never)')
    .option('--agents <globs>', 'only these agents (comma-separated globs, e.g. "support-*")', list)
    .option('--capabilities <globs>', 'only these capabilities', list)
    .option('--memory <scopes>', 'only these memory scopes', list)
    .option('--tools <globs>', 'only these host tools (SERVER.tool, SERVER.*)', list)
    .option('--rpm <n>', 'requests per minute', positiveInt('--rpm'))
    .option('--concurrency <n>', 'concurrent agent executions', positiveInt('--concurrency'))
    .option('--tokens-per-minute <n>', 'LLM tokens per minute', positiveInt('--tokens-per-minute'))
    .addHelpText(
      'after',
      `${ROLE_HELP}\n\nExamples:\n  caxton key create --name ci --role operator --expires 30d\n  caxton key create --name support-bot --role invoker --agents 'support-*' --concurrency 2 --tokens-per-minute 1000`,
    )
    .action(
      async (o: {
        name: string;
        role: string;
        expires?: string;
        agents?: string[];
        capabilities?: string[];
        memory?: string[];
        tools?: string[];
        rpm?: number;
        concurrency?: number;
        tokensPerMinute?: number;
      }) => {
        const out = ctx.output();
        const limits = {
          ...(o.rpm !== undefined && { requests_per_minute: o.rpm }),
          ...(o.concurrency !== undefined && { concurrent_executions: o.concurrency }),
          ...(o.tokensPerMinute !== undefined && { tokens_per_minute: o.tokensPerMinute }),
        };
        const body = {
          name: o.name,
          role: o.role,
          ...(o.expires && { expires: o.expires }),
          ...(o.agents && { agents: o.agents }),
          ...(o.capabilities && { capabilities: o.capabilities }),
          ...(o.memory && { memory: o.memory }),
          ...(o.tools && { tools: o.tools }),
          ...(Object.keys(limits).length > 0 && { limits }),
        };
        const { data } = await ctx.client().post<{ key: ApiKeyInfo; secret: string }>('/api/v1/keys', body);
        if (out.json) return out.data(data);
        out.out(
          `created key "${data.key.name}" (id ${data.key.id}, role ${data.key.role}${data.key.expires_at ? `, expires ${data.key.expires_at}` : ''})`,
        );
        out.out('');
        out.out(`  ${data.secret}`);
        out.out('');
        out.out('This is the only time the secret is shown: store it now (e.g. CAXTON_API_KEY in your CI secrets).');
      },
    );
}

/** `caxton key list`. */
function registerKeyList(key: Command, ctx: CliContext): void {
  key
    .command('list')
    .alias('ls')
    .description('list API keys (never their secrets)')
    .option('--all', 'include revoked keys')
    .action(async (o: { all?: boolean }) => {
      const out = ctx.output();
      const res = await ctx.client().get<{ keys: ApiKeyInfo[] }>(`/api/v1/keys${o.all ? '?all=true' : ''}`);
      if (out.json) return out.data(res);
      if (res.keys.length === 0) return out.out('no API keys');
      out.out(
        table(
          ['NAME', 'ID', 'ROLE', 'STATE', 'SCOPE', 'EXPIRES', 'LAST USED'],
          res.keys.map((k) => [
            k.name,
            k.id,
            k.role,
            k.state,
            scopeText(k),
            k.expires_at ?? 'never',
            k.last_used_at ?? 'never',
          ]),
        ),
      );
    });
}

/** `caxton key show <key>`. */
function registerKeyShow(key: Command, ctx: CliContext): void {
  key
    .command('show <key>')
    .description('one key (by name or id) and its use against its limits')
    .action(async (name: string) => {
      const out = ctx.output();
      const res = await ctx
        .client()
        .get<{ key: ApiKeyInfo; usage?: Record<string, unknown> }>(`/api/v1/keys/${encodeURIComponent(name)}`);
      if (out.json) return out.data(res);
      const k = res.key;
      const rows: [string, string][] = [
        ['name', k.name],
        ['id', k.id],
        ['role', k.role],
        ['state', k.state],
        ['scope', scopeText(k)],
        [
          'limits',
          Object.keys(k.limits).length > 0
            ? Object.entries(k.limits)
                .map(([n, v]) => `${n}=${v}`)
                .join(' ')
            : 'server defaults',
        ],
        ['created', `${k.created_at}${k.created_by ? ` by ${k.created_by}` : ''}`],
        ['expires', k.expires_at ?? 'never'],
        ['rotated', k.rotated_at ?? 'never'],
        ['last used', k.last_used_at ?? 'never'],
      ];
      if (k.revoked_at) rows.push(['revoked', k.revoked_at]);
      if (res.usage)
        for (const [n, v] of Object.entries(res.usage))
          rows.push([`use: ${n}`, typeof v === 'object' ? JSON.stringify(v) : String(v)]);
      out.out(rows.map(([a, b]) => `${a.padEnd(18)} ${b}`).join('\n'));
    });
}

/** `caxton key revoke <key>`. */
function registerKeyRevoke(key: Command, ctx: CliContext): void {
  key
    .command('revoke <key>')
    .description('revoke a key (by name or id): it stops working at once')
    .action(async (name: string) => {
      const out = ctx.output();
      const res = await ctx.client().request<{ key: ApiKeyInfo }>('DELETE', `/api/v1/keys/${encodeURIComponent(name)}`);
      if (out.json) return out.data(res.data);
      out.out(`revoked key "${res.data.key.name}" (id ${res.data.key.id})`);
    });
}

/** `caxton key rotate <key>`. */
function registerKeyRotate(key: Command, ctx: CliContext): void {
  key
    .command('rotate <key>')
    .description('a new secret for a key (same name, role, scope and limits); the old secret stops working at once')
    .option('--signing', 'rotate a message signing key instead: <key> is "node" or an agent name (ADR 0059)')
    .addHelpText(
      'after',
      `\nExamples:\n  caxton key rotate ci\n  caxton key rotate --signing node\n  caxton key rotate --signing coordinator\n\nA rotated signing key signs nothing more, and still verifies the messages it signed.`,
    )
    .action(async (name: string, o: { signing?: boolean }) => {
      const out = ctx.output();
      if (o.signing) {
        const { data } = await ctx.client().post<{
          key: SigningKeyInfo;
          retired: SigningKeyInfo | null;
        }>(`/api/v1/signing-keys/${encodeURIComponent(name)}/rotate`);
        if (out.json) return out.data(data);
        return out.out(
          `new signing key ${data.key.id} for ${data.key.owner} on node ${data.key.node}${data.retired ? `; ${data.retired.id} is retired (it still verifies what it signed)` : ''}`,
        );
      }
      const { data } = await ctx
        .client()
        .post<{ key: ApiKeyInfo; secret: string }>(`/api/v1/keys/${encodeURIComponent(name)}/rotate`);
      if (out.json) return out.data(data);
      out.out(
        `new secret for key "${data.key.name}" (id ${data.key.id}):\n\n  ${data.secret}\n\nThis is the only time it is shown.`,
      );
    });
}

/** `caxton key signing`: the message signing keys. */
function registerKeySigning(key: Command, ctx: CliContext): void {
  key
    .command('signing')
    .description(
      "list message signing keys (public halves): the node's, each agent's and the callers' registered ones, active and retired",
    )
    .action(async () => {
      const out = ctx.output();
      const res = await ctx.client().get<{ node: string; keys: SigningKeyInfo[] }>('/api/v1/signing-keys');
      if (out.json) return out.data(res);
      if (res.keys.length === 0)
        return out.out('no signing keys (they are made when [messaging] signing = true signs a first message)');
      out.out(
        table(
          ['ID', 'OWNER', 'NODE', 'STATE', 'CREATED', 'RETIRED'],
          res.keys.map((k) => [k.id, k.owner, k.node, k.state, k.created_at, k.retired_at ?? '']),
        ),
      );
    });
}

/** `caxton key register-signing <principal> <public-key>`. */
function registerKeyRegisterSigning(key: Command, ctx: CliContext): void {
  key
    .command('register-signing <principal> <public-key>')
    .description(
      "register a caller's Ed25519 public key (ADR 0115): messages that principal signs with it are accepted as its",
    )
    .addHelpText(
      'after',
      `\n<principal> is the caller's id as \`caxton whoami\` shows it (key:NAME, oidc:SUBJECT); <public-key> is a file\nholding an SPKI PEM, or the key's 32 raw bytes in base64. The principal's key registered before is retired.\n\nExample:\n  caxton key register-signing key:ci ci-signing.pub.pem\n\nHow to sign a message: docs/signed-messages.md.`,
    )
    .action(async (principal: string, publicKey: string) => {
      const out = ctx.output();
      let text = publicKey;
      if (existsSync(publicKey)) text = readFileSync(publicKey, 'utf8');
      else if (!/^[A-Za-z0-9+/]{42,43}=?$/.test(publicKey.trim()))
        throw usageError(`${publicKey}: no such file, and not a 32-byte public key in base64`);
      const { data } = await ctx
        .client()
        .post<{ key: SigningKeyInfo; retired: SigningKeyInfo | null }>('/api/v1/signing-keys/principals', {
          principal,
          public_key: text,
        });
      if (out.json) return out.data(data);
      out.out(
        `signing key ${data.key.id} registered for ${principal}${data.retired ? `; ${data.retired.id} is retired` : ''}`,
      );
    });
}

/** `caxton login`: a server URL and API key stored as a named profile. */
function registerLogin(program: Command, ctx: CliContext): void {
  program
    .command('login')
    .description('store a server URL and API key as a named profile (the key is read from standard input)')
    .addHelpText(
      'after',
      `\nThe global --server (required here) and --profile options say where and under which name:\n  printf %s "$KEY" | caxton login --server https://caxton.example.com --profile prod\nThe key is read from standard input, so it never appears in the process list or shell history.\nProfiles are kept in ${credentialsFile()} (mode 0600); use one with --profile NAME or $CAXTON_PROFILE.`,
    )
    .action(async () => {
      const out = ctx.output();
      const o = { server: program.opts().server as string | undefined };
      if (!o.server) throw usageError('caxton login needs --server URL (the server to log in to)');
      const profile = (program.opts().profile as string | undefined) ?? 'default';
      if (process.stdin.isTTY) out.err('paste the API key and press Ctrl-D:');
      const apiKey = await readStdin();
      if (apiKey.length === 0) throw usageError('no API key on standard input');
      const client = new ApiClient(normalizeServerUrl(o.server, '--server'), { apiKey });
      const who = await client.get<{ id: string; role: string }>('/api/v1/whoami');
      const file = writeProfile(profile, { server: client.base, api_key: apiKey });
      if (out.json) return out.data({ profile, server: client.base, principal: who.id, role: who.role, file });
      out.out(`logged in to ${client.base} as ${who.id} (role ${who.role}); profile "${profile}" saved in ${file}`);
    });
}

/** `caxton logout`. */
function registerLogout(program: Command, ctx: CliContext): void {
  program
    .command('logout')
    .description('remove a stored profile (the global --profile, default "default")')
    .action(() => {
      const out = ctx.output();
      const profile = (program.opts().profile as string | undefined) ?? 'default';
      if (!removeProfile(profile)) throw new CliError(`no profile "${profile}" in ${credentialsFile()}`);
      if (out.json) return out.data({ profile, removed: true });
      out.out(`removed profile "${profile}"`);
    });

  program
    .command('whoami')
    .description('who the server says you are: principal, role, scope, and where the CLI found the key')
    .action(async () => {
      const out = ctx.output();
      const c = ctx.credentials();
      const who = await ctx.client().get<Record<string, unknown>>('/api/v1/whoami');
      if (out.json)
        return out.data({
          server: c.server,
          server_source: c.serverSource,
          ...(c.serverFile !== undefined && { server_file: c.serverFile }),
          key_source: c.keySource,
          ...who,
        });
      out.out(
        `${String(who.id)} (role ${String(who.role)}) at ${c.server} (from ${describeServerSource(c)}); key from ${c.keySource === 'env' ? '$CAXTON_API_KEY' : c.keySource === 'profile' ? `profile "${c.profile}"` : c.keySource === 'local-server' ? "the local server's admin key" : 'nowhere (authentication is off)'}`,
      );
    });
}
