/**
 * A message bus over a real SQLite file, with agents in a real registry and in-process handlers
 * (no LLM): the bus's own behaviour, without the executor.
 */
import { AgentRegistry, parseAgent, type AgentDefinition } from '../../src/agents/index.js';
import { loadServerConfig } from '../../src/config/index.js';
import {
  type AclMessage,
  type ConversationId,
  type MessageHandler,
  type MessageId,
  type MessagingConfig,
} from '../../src/messaging/index.js';
import { MESSAGING_MIGRATIONS, MessageBus } from '../../src/messaging/sqlite/index.js';
import { migrate, openDatabase, type Db } from '../../src/storage/index.js';
import { makeTempDir } from '../helpers/tmp.js';

/** A hand-built ACL message for unit tests (a request from "user", no receivers), with `over` on top. */
export function aclMessage(over: Partial<Omit<AclMessage, 'id' | 'conversation_id'>> = {}): AclMessage {
  return {
    id: 'msg_1' as MessageId,
    performative: 'request',
    sender: 'user',
    receivers: [],
    content: 'x',
    conversation_id: 'conv_1' as ConversationId,
    params: {},
    timestamp: '2026-01-01T00:00:00.000Z',
    chain: [],
    ...over,
  };
}

export function agentDef(name: string, capabilities: string[], extra = ''): AgentDefinition {
  const src = `name = "${name}"\ncapabilities = [${capabilities.map((c) => `"${c}"`).join(', ')}]\nsystem_prompt = "You are ${name}."\n${extra}`;
  const r = parseAgent(src, { format: 'toml', file: `${name}.toml` });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.definition;
}

export function deploy(registry: AgentRegistry, def: AgentDefinition): void {
  const now = new Date().toISOString();
  registry.upsert({
    definition: def,
    format: 'toml',
    origin: { kind: 'api' },
    revision: 1,
    deployed_at: now,
    updated_at: now,
  });
}

export interface TestBus {
  bus: MessageBus;
  registry: AgentRegistry;
  db: Db;
  dir: string;
  reopen(): TestBus;
  close(): Promise<void>;
}

export function messagingConfig(over: Partial<MessagingConfig> = {}): MessagingConfig {
  return { ...loadServerConfig({ env: {}, cwd: process.cwd() }).messaging, ...over };
}

export function openBus(
  opts: { dir?: string; config?: Partial<MessagingConfig>; handler?: MessageHandler; registry?: AgentRegistry } = {},
): TestBus {
  const dir = opts.dir ?? makeTempDir('caxton-msg-');
  const db = openDatabase(dir);
  migrate(db, MESSAGING_MIGRATIONS);
  const registry = opts.registry ?? new AgentRegistry();
  const bus = new MessageBus({ db, registry, config: messagingConfig(opts.config) });
  if (opts.handler) bus.setAgentHandler(opts.handler);
  const t: TestBus = {
    bus,
    registry,
    db,
    dir,
    reopen: () => openBus({ ...opts, dir, registry }),
    async close() {
      await bus.close();
      db.close();
    },
  };
  return t;
}
