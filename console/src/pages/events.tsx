/**
 * Events (/ui/events): agent events (lifecycle, communication, performance), live (GET
 * /api/v1/events/stream, the last hour replayed first), with the type, agent and text filters in
 * the URL query, pause and resume, and a bounded buffer (tail.tsx). An execution's event shows its
 * trace id (a link to the log lines of that trace) and links to its agent and conversation.
 */
import { useState } from 'preact/hooks';
import type { PageProps } from '../pages';
import { Link, setQuery } from '../router';
import { TailControls, TailList, useTail } from './tail';
import { EVENT_TYPES } from '../vocabulary';
import { when } from '../format';

interface AgentEvent {
  id: number;
  time: string;
  type: string;
  category: string;
  agent: string;
  trace_id: string | null;
  span_id: string | null;
  data: Record<string, unknown> | null;
}

const TYPES = ['lifecycle', 'communication', 'performance', ...EVENT_TYPES] as const;

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

export default function Events({ query }: PageProps) {
  const type = query.get('type') ?? '';
  const agent = query.get('agent') ?? '';
  const text = query.get('q') ?? '';
  const tail = useTail<AgentEvent>(
    {
      path: '/api/v1/events/stream',
      query: { type: type || undefined, agent: agent || undefined, since: '1h', limit: 200 },
      parse: (e) => {
        if (e.event === 'ready') return undefined;
        try {
          return JSON.parse(e.data) as AgentEvent;
        } catch {
          return undefined;
        }
      },
      textOf: (ev) => JSON.stringify(ev),
      filter: text,
    },
    [type, agent],
  );
  const { shown } = tail;
  return (
    <section aria-labelledby="events-title">
      <h1 id="events-title">Events</h1>
      <Filters type={type} agent={agent} text={text} />
      <TailControls tail={tail} label="events" />
      <TailList label="Agent events" newest={shown.at(-1)?.key ?? -1}>
        {shown.map(({ key, item: ev }) => {
          const d = ev.data ?? {};
          const conversation = str(d.conversation_id);
          // An execution is its run (the same id); an approval event names its run.
          const execution = str(d.execution_id) || str(d.run_id);
          const waitsOn = str(d.tool) && `${str(d.tool)} (${str(d.call_id)})`;
          const summary = [
            str(d.status),
            str(d.new_state),
            str(d.performative),
            str(d.reason),
            str(d.decision),
            waitsOn,
          ]
            .filter(Boolean)
            .join(' · ');
          return (
            <li key={key} class={`event-line cat-${ev.category}`} data-testid="event-line" data-type={ev.type}>
              <time dateTime={ev.time}>{when(ev.time, { ms: true })}</time> <span class="etype">{ev.type}</span>{' '}
              <Link to={`/agents/${encodeURIComponent(ev.agent)}`}>{ev.agent}</Link>
              {summary && <span> {summary}</span>}
              {typeof d.duration_ms === 'number' && <span class="small muted"> {d.duration_ms} ms</span>}
              {conversation && (
                <>
                  {' '}
                  <Link to={`/conversations/${encodeURIComponent(conversation)}`} class="small">
                    conversation {conversation}
                  </Link>
                </>
              )}
              {execution && (
                <>
                  {' '}
                  <Link to={`/runs/${encodeURIComponent(execution)}`} class="small" data-testid="run-link">
                    run {execution}
                  </Link>
                </>
              )}
              {ev.trace_id && (
                <span class="small">
                  {' '}
                  trace{' '}
                  <Link to={`/logs?q=${ev.trace_id}`} title="The log lines of this trace">
                    <code data-testid="trace-id">{ev.trace_id}</code>
                  </Link>
                </span>
              )}
            </li>
          );
        })}
      </TailList>
    </section>
  );
}

function Filters({ type, agent, text }: { type: string; agent: string; text: string }) {
  const [a, setA] = useState(agent);
  const [t, setT] = useState(text);
  return (
    <form
      class="filters"
      aria-label="Event filters"
      onSubmit={(e) => {
        e.preventDefault();
        setQuery({ agent: a.trim(), q: t });
      }}
    >
      <div class="filter">
        <label for="events-type">Type</label>
        <select
          id="events-type"
          value={type}
          onChange={(e) => setQuery({ type: (e.target as HTMLSelectElement).value })}
        >
          <option value="">any</option>
          {TYPES.map((x) => (
            <option key={x} value={x}>
              {x}
            </option>
          ))}
        </select>
      </div>
      <div class="filter">
        <label for="events-agent">Agent</label>
        <input id="events-agent" type="text" value={a} onInput={(e) => setA((e.target as HTMLInputElement).value)} />
      </div>
      <div class="filter grow">
        <label for="events-text">Text</label>
        <input
          id="events-text"
          type="search"
          value={t}
          onInput={(e) => setT((e.target as HTMLInputElement).value)}
          placeholder="shown events contain this"
        />
      </div>
      <div class="filter">
        <button type="submit">Apply</button>
      </div>
    </form>
  );
}
