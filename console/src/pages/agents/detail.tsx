/** One agent: tabs for its definition, versions and rollout, a chat, and the editor. */
import { useEffect } from 'preact/hooks';
import { useApi } from '../../hooks';
import { ErrorBox, Loading } from '../../components/feedback';
import { Link, navigate } from '../../router';
import { can } from '../../session';
import { AgentChat } from './chat';
import { AgentEditor } from './editor';
import { AgentVersions } from './versions';
import { agentPath, type AgentDetail, type Versions } from './types';

const TABS = [
  { id: 'definition', title: 'Definition', permission: 'agents:read' },
  { id: 'versions', title: 'Versions and rollout', permission: 'agents:read' },
  { id: 'chat', title: 'Chat', permission: 'agents:invoke' },
  { id: 'edit', title: 'Edit', permission: 'agents:write' },
] as const;

export function AgentDetailView({ name, tab, onChanged }: { name: string; tab: string; onChanged: () => void }) {
  // NAME@VERSION is a version to chat with: the agent's chat, on that version.
  const at = name.lastIndexOf('@');
  useEffect(() => {
    if (at > 0)
      navigate(
        `/agents/${encodeURIComponent(name.slice(0, at))}/chat?version=${encodeURIComponent(name.slice(at + 1))}`,
        {
          replace: true,
        },
      );
  }, [name]);
  const agent = useApi<AgentDetail>(at > 0 ? undefined : agentPath(name));
  const base = `/agents/${encodeURIComponent(name)}`;
  const tabs = TABS.filter((t) => can(t.permission));
  const current = tabs.find((t) => t.id === tab);
  return (
    <article aria-labelledby="agent-title">
      <h2 id="agent-title">{name}</h2>
      <nav aria-label="Agent views" class="tabs">
        {tabs.map((t) => (
          <Link
            key={t.id}
            to={t.id === 'definition' ? base : `${base}/${t.id}`}
            {...(t.id === current?.id && { 'aria-current': 'page' })}
          >
            {t.title}
          </Link>
        ))}
      </nav>
      {!current ? (
        <p role="alert" class="error">
          {TABS.some((t) => t.id === tab)
            ? `Your key lacks the permission ${TABS.find((t) => t.id === tab)!.permission} needed for this view.`
            : `No view "${tab}".`}
        </p>
      ) : agent.error ? (
        <ErrorBox error={agent.error} />
      ) : !agent.data ? (
        <Loading what={name} />
      ) : current.id === 'definition' ? (
        <Definition agent={agent.data} />
      ) : current.id === 'versions' ? (
        <AgentVersions
          name={name}
          onChanged={() => {
            agent.reload();
            onChanged();
          }}
        />
      ) : current.id === 'chat' ? (
        <AgentChat name={name} />
      ) : (
        <AgentEditor
          existing={agent.data}
          onDeployed={() => {
            agent.reload();
            onChanged();
          }}
        />
      )}
    </article>
  );
}

function Definition({ agent }: { agent: AgentDetail }) {
  const d = agent.definition;
  // The text it was deployed from: the current version's source (files and API deploys alike).
  const versions = useApi<Versions>(agentPath(agent.name, '/versions'), { limit: 1 });
  const current = versions.data?.current ?? undefined;
  const source = useApi<{ source: string; format: string }>(
    current === undefined ? undefined : agentPath(agent.name, `/versions/${current}`),
  );
  return (
    <div>
      {agent.description && <p>{agent.description}</p>}
      <dl class="facts">
        <div>
          <dt>Capabilities</dt>
          <dd data-testid="capabilities">{agent.capabilities.join(', ') || 'none'}</dd>
        </div>
        <div>
          <dt>Tools</dt>
          <dd data-testid="tools">{agent.tools.join(', ') || 'none'}</dd>
        </div>
        <div>
          <dt>Origin</dt>
          <dd>
            {agent.origin.kind === 'file'
              ? `file ${agent.origin.path}`
              : agent.origin.kind === 'a2a'
                ? `remote A2A agent ${agent.origin.url}`
                : 'deployed through the API'}
          </dd>
        </div>
        <div>
          <dt>Revision</dt>
          <dd>
            {agent.revision} · {agent.format}
            {agent.version && <> · version {agent.version}</>}
          </dd>
        </div>
        {can('observe:read') && (
          <div>
            <dt>Runs</dt>
            <dd>
              <Link to={`/runs?agent=${encodeURIComponent(agent.name)}`} data-testid="agent-runs">
                Runs of {agent.name}
              </Link>
            </dd>
          </div>
        )}
      </dl>
      <h3 id="definition-source">Source{current !== undefined && <> (version {current})</>}</h3>
      {source.data ? (
        <pre class="source" aria-labelledby="definition-source" tabIndex={0} data-testid="agent-source">
          {source.data.source}
        </pre>
      ) : (
        <ErrorBox error={versions.error ?? source.error} />
      )}
      <details>
        <summary>Parsed definition (JSON)</summary>
        <pre class="source" tabIndex={0}>
          {JSON.stringify(d, null, 2)}
        </pre>
      </details>
    </div>
  );
}
