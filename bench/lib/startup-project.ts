/** The project each measured cold start serves, and the preload that reports its CPU time (bench/startup.ts, bench/code-cache.ts). */

/** A fresh project: one scripted-model agent, no authentication, no metrics listener. */
export const PROJECT: Record<string, string> = {
  'caxton.toml':
    'data_dir = "data"\nagents_dir = "agents"\n[server]\nhost = "127.0.0.1"\nport = 0\n[auth]\nenabled = false\n[metrics]\nenabled = false\n[llm]\ndefault_provider = "fake"\n[llm.providers.fake]\ntype = "scripted"\nscript = "replies.toml"\n',
  'replies.toml': 'fallback = "hello"\n',
  'agents/echo.toml': 'name = "echo"\ndescription = "answers hello"\nsystem_prompt = "Answer."\n',
};

/**
 * Preloaded into each measured start: when the first POST is answered, prints the process's CPU
 * time so far (user + system, all threads), the steadier measure on a loaded machine.
 */
export const FIRST_CPU = `import http from 'node:http';
const end = http.ServerResponse.prototype.end;
let done = false;
http.ServerResponse.prototype.end = function (...a) {
  const first = !done && this.req?.method === 'POST';
  if (first) done = true;
  const u = first ? process.cpuUsage() : undefined;
  const r = end.apply(this, a);
  if (u) process.stderr.write('first-answer-cpu-ms ' + (u.user + u.system) / 1000 + '\\n');
  return r;
};
`;
