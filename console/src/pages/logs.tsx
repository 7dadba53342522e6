/**
 * Logs (/ui/logs): the server's log lines, live (GET /api/v1/logs/stream), with the level, agent
 * and text filters in the URL query, pause and resume, and a bounded buffer (tail.tsx).
 */
import { useState } from 'preact/hooks';
import type { PageProps } from '../pages';
import { Link, setQuery } from '../router';
import { TailControls, TailList, useTail } from './tail';
import { when } from '../format';

interface LogLine {
  seq: number;
  level: string;
  time: string;
  msg?: string;
  agent?: string;
  trace_id?: string;
  [k: string]: unknown;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
const SHOWN = new Set(['seq', 'level', 'time', 'msg', 'agent', 'trace_id', 'service', 'pid', 'hostname']);

export default function Logs({ query }: PageProps) {
  const level = query.get('level') ?? '';
  const agent = query.get('agent') ?? '';
  const text = query.get('q') ?? '';
  const tail = useTail<LogLine>(
    {
      path: '/api/v1/logs/stream',
      query: { level: level || undefined, agent: agent || undefined, limit: 200 },
      parse: (e) => {
        if (e.event !== 'log') return undefined;
        try {
          return JSON.parse(e.data) as LogLine;
        } catch {
          return undefined;
        }
      },
      textOf: (l) => JSON.stringify(l),
      filter: text,
    },
    [level, agent],
  );
  const { shown } = tail;
  return (
    <section aria-labelledby="logs-title">
      <h1 id="logs-title">Logs</h1>
      <Filters level={level} agent={agent} text={text} />
      <TailControls tail={tail} label="lines" />
      <TailList label="Log lines" newest={shown.at(-1)?.key ?? -1}>
        {shown.map(({ key, item: l }) => {
          const extra = Object.entries(l).filter(([k]) => !SHOWN.has(k));
          return (
            <li key={key} class={`log-line level-${l.level}`} data-testid="log-line">
              <time dateTime={l.time}>{when(l.time, { ms: true })}</time> <span class="level">{l.level}</span>{' '}
              <span class="msg">{l.msg ?? ''}</span>
              {typeof l.agent === 'string' && (
                <>
                  {' '}
                  <Link to={`/agents/${encodeURIComponent(l.agent)}`}>{l.agent}</Link>
                </>
              )}
              {typeof l.trace_id === 'string' && <span class="small muted"> trace {l.trace_id}</span>}
              {extra.length > 0 && (
                <span class="small muted">
                  {' '}
                  {extra.map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')}
                </span>
              )}
            </li>
          );
        })}
      </TailList>
    </section>
  );
}

function Filters({ level, agent, text }: { level: string; agent: string; text: string }) {
  const [a, setA] = useState(agent);
  const [t, setT] = useState(text);
  return (
    <form
      class="filters"
      aria-label="Log filters"
      onSubmit={(e) => {
        e.preventDefault();
        setQuery({ agent: a.trim(), q: t });
      }}
    >
      <div class="filter">
        <label for="logs-level">Level (and above)</label>
        <select
          id="logs-level"
          value={level}
          onChange={(e) => setQuery({ level: (e.target as HTMLSelectElement).value })}
        >
          <option value="">any</option>
          {LEVELS.map((l) => (
            <option key={l} value={l}>
              {l}
            </option>
          ))}
        </select>
      </div>
      <div class="filter">
        <label for="logs-agent">Agent</label>
        <input id="logs-agent" type="text" value={a} onInput={(e) => setA((e.target as HTMLInputElement).value)} />
      </div>
      <div class="filter grow">
        <label for="logs-text">Text</label>
        <input
          id="logs-text"
          type="search"
          value={t}
          onInput={(e) => setT((e.target as HTMLInputElement).value)}
          placeholder="shown lines contain this"
        />
      </div>
      <div class="filter">
        <button type="submit">Apply</button>
      </div>
    </form>
  );
}
