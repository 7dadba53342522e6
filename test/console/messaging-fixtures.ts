/**
 * Fixtures of the console's messaging tests (conversations, messages, dead letters): agents whose
 * model is the OpenAI-compatible LLM stub started by the test (test/execution/helpers/llm-stub.ts),
 * configured through startConsoleServer's extra caxton.toml.
 */
import type { ServerResponse } from 'node:http';
import type { Page } from 'playwright-core';
import { agentToml, type AgentSpec } from '../execution/helpers/caxton.js';
import type { RawHandler, StubHit } from '../execution/helpers/llm-stub.js';
import { http } from '../helpers/http.js';
import { openaiCompletion, sendJson } from '../helpers/llm-standin.js';
import { bearer } from '../helpers/keys.js';

/** The agent a stub request is for: the system prompt starts with "You are NAME." */
export function agentOf(hit: StubHit): string {
  const msgs = hit.body?.messages as { role: string; content: string }[] | undefined;
  return /You are ([\w-]+)\./.exec(msgs?.[0]?.content ?? '')?.[1] ?? '?';
}

/** The latest user message of a stub request (the rendered ACL message). */
export function lastUser(hit: StubHit): string {
  const msgs = (hit.body?.messages ?? []) as { role: string; content: string }[];
  return [...msgs].reverse().find((m) => m.role === 'user')?.content ?? '';
}

/** A non-streaming OpenAI chat completion. */
export function completion(res: ServerResponse, content: string): void {
  sendJson(res, openaiCompletion({ id: 'chatcmpl-console', model: 'gpt-test', content }));
}

/** A model's answer through one of the acts its protocol step offers as tools (src/messaging/acts.ts). */
export function actCompletion(res: ServerResponse, name: string, args: Record<string, unknown>, content = ''): void {
  sendJson(
    res,
    openaiCompletion({
      id: 'chatcmpl-console',
      model: 'gpt-test',
      content,
      tool_calls: [{ id: `call_${name}`, name, arguments: args }],
    }),
  );
}

/** Answers held back until `open()`: the test decides when the agents reply. */
export function gate(): {
  hold: (content: string) => RawHandler;
  holdAct: (name: string, args: Record<string, unknown>, content?: string) => RawHandler;
  open(): void;
} {
  let release!: () => void;
  const opened = new Promise<void>((r) => (release = r));
  return {
    hold: (content) => async (res) => {
      await opened;
      if (!res.destroyed) completion(res, content);
    },
    holdAct: (name, args, content) => async (res) => {
      await opened;
      if (!res.destroyed) actCompletion(res, name, args, content);
    },
    open: () => release(),
  };
}

/** caxton.toml additions: the stub as provider "stub" (and "flaky": no retries), and messaging limits. */
export function stubToml(stubUrl: string, messaging = ''): string {
  const provider = (name: string, extra = '') =>
    `\n[llm.providers.${name}]\ntype = "openai"\nbase_url = "${stubUrl}/v1"\napi_key_env = "TEST_OPENAI_KEY"\nmodel = "gpt-test"\nretry_base = "10ms"\n${extra}`;
  return `${provider('stub')}${provider('flaky', 'max_retries = 0\n')}${messaging ? `\n[messaging]\n${messaging}\n` : ''}`;
}

/** Agent files (agents/NAME.toml) using the stub's providers. */
export function agentFiles(specs: AgentSpec[]): Record<string, string> {
  return Object.fromEntries(specs.map((s) => [`${s.name}.toml`, agentToml(s)]));
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

/** POST /api/v1/messages with a key. */
export async function sendMessage(url: string, key: string, body: Record<string, unknown>, query = ''): Promise<Json> {
  const r = await http<Json>(url, 'POST', `/api/v1/messages${query}`, {
    body: JSON.stringify(body),
    contentType: 'application/json',
    headers: bearer(key),
  });
  if (r.status !== 202 && r.status !== 200) throw new Error(`POST /api/v1/messages: ${r.status} ${r.text}`);
  return r.json;
}

/** Evaluates `expr` on the focused element in the page (`el` names it; a string, as the tests have no DOM types). */
export const onFocused = <T>(page: Page, expr: string): Promise<T> =>
  page.evaluate(`(() => { const el = document.activeElement; return el ? ${expr} : undefined; })()`) as Promise<T>;

/** Tabs until the focused element matches `selector` (at most `max` presses); fails naming where focus ended. */
export async function tabTo(page: Page, selector: string, max = 60): Promise<void> {
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    if (await onFocused<boolean>(page, `el.matches(${JSON.stringify(selector)})`)) return;
  }
  throw new Error(
    `Tab never reached ${selector} (focus ends on ${await onFocused<string>(page, 'el.outerHTML.slice(0, 200)')})`,
  );
}
