import type { Command } from 'commander';
import { ApiError, type ApiClient } from '../api-client.js';
import { CliError, EXIT } from '../errors.js';
import type { CliContext } from '../context.js';

interface AgentResponse {
  content: string;
  tool_calls: { name: string; arguments: unknown; result: string; is_error: boolean }[];
  usage: { input_tokens: number; output_tokens: number; total_tokens: number };
  execution_time_ms: number;
  finish_reason: string;
  provider: string;
  model: string;
  all_tool_calls_refused?: true;
}

export function parseParams(pairs: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new CliError(`--param expects NAME=VALUE, got "${p}"`, { exitCode: 2 });
    const raw = p.slice(eq + 1);
    let v: unknown = raw;
    try {
      v = JSON.parse(raw);
    } catch {
      /* a plain string */
    }
    out[p.slice(0, eq)] = v;
  }
  return out;
}

async function streamRun(client: ApiClient, name: string, body: string, json: boolean): Promise<AgentResponse> {
  let final: AgentResponse | undefined;
  let failure: ApiError['body'] | undefined;
  await client.events(
    `/api/v1/agents/${encodeURIComponent(name)}/invoke`,
    (event, data) => {
      const d = JSON.parse(data) as Record<string, unknown>;
      if (event === 'token' && !json) process.stdout.write(String(d.text));
      else if (event === 'tool_call' && !json)
        process.stderr.write(
          `\n[tool ${String((d.call as { name: string }).name)} ${JSON.stringify((d.call as { arguments: unknown }).arguments)}]\n`,
        );
      else if (event === 'tool_result' && !json)
        process.stderr.write(`[${d.is_error ? 'tool error' : 'result'}: ${String(d.content).slice(0, 200)}]\n`);
      else if (event === 'response') final = d as unknown as AgentResponse;
      else if (event === 'error') failure = d as unknown as ApiError['body'];
    },
    { method: 'POST', body, contentType: 'application/json' },
  );
  if (failure) throw new ApiError(500, failure);
  if (!final) throw new CliError('the stream ended without a response');
  if (!json) process.stdout.write('\n');
  return final;
}

/**
 * The answer of POST /invoke. A 202 is no answer: the run waits for a person to approve a tool
 * call (its body is an error envelope naming the run), so the command fails with the way on.
 */
async function invoke(client: ApiClient, name: string, body: string): Promise<AgentResponse> {
  const { status, data } = await client.request<AgentResponse | ApiError['body']>(
    'POST',
    `/api/v1/agents/${encodeURIComponent(name)}/invoke`,
    { body, contentType: 'application/json', timeoutMs: 15 * 60_000 },
  );
  if (status === 202 && 'error' in data) {
    const run = (data.error.details as { run_id?: string } | null)?.run_id ?? 'RUN';
    throw new CliError(data.error.message, {
      lines: [
        `decide with: caxton run approve ${run}  or  caxton run deny ${run} --reason TEXT`,
        `then see its answer with: caxton run show ${run}`,
      ],
      json: data,
    });
  }
  return data as AgentResponse;
}

export function registerRun(agent: Command, ctx: CliContext): void {
  agent
    .command('run')
    .description('run an agent on a request and print its answer')
    .argument('<name>', 'agent name')
    .argument('<request>', 'what to ask the agent')
    .option('--stream', 'print the answer as it is generated')
    .option('--context <text>', 'extra context ({{context}} in the prompt)')
    .option(
      '--param <name=value>',
      'set a prompt parameter ({{parameters.NAME}}); repeatable',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--conversation <id>', 'conversation id to attach the request to')
    .action(
      async (
        name: string,
        request: string,
        opts: { stream?: boolean; context?: string; param: string[]; conversation?: string },
      ) => {
        const out = ctx.output();
        const client = ctx.client();
        const params = parseParams(opts.param);
        const body = JSON.stringify({
          request,
          ...(opts.context && { context: opts.context }),
          ...(opts.param.length > 0 && { parameters: params }),
          ...(opts.conversation && { conversation_id: opts.conversation }),
        });
        const res = opts.stream ? await streamRun(client, name, body, out.json) : await invoke(client, name, body);
        // The run answered, but without any tool working: a script must not take it for a success.
        if (res.all_tool_calls_refused === true) process.exitCode = EXIT.refused;
        if (out.json) return out.data(res);
        if (!opts.stream) {
          for (const t of res.tool_calls)
            out.err(
              `[tool ${t.name} ${JSON.stringify(t.arguments)} -> ${t.is_error ? 'error: ' : ''}${t.result.slice(0, 200)}]`,
            );
          out.out(res.content);
        }
        out.err(
          `(${res.provider}/${res.model}, ${res.usage.total_tokens} tokens, ${Math.round(res.execution_time_ms)} ms, ${res.finish_reason})`,
        );
        if (res.all_tool_calls_refused === true)
          out.err(
            `every tool call of this run was refused (${res.tool_calls.length}): none ran (the refusals above say why; caxton agent show ${name} names any setting it lacks) (exit code ${EXIT.refused})`,
          );
      },
    );
}
