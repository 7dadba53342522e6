/**
 * The agent-file editor: validate (POST /api/v1/agents/validate, deploys nothing) and deploy
 * (POST /api/v1/agents for a new agent, PUT .../NAME for a new version, optionally as a
 * blue-green, canary or shadow rollout). Deploying validates first: an invalid file is never
 * sent to be stored, and the server's located errors (line, column, field) are shown under the
 * text. The server also refuses an invalid body itself (422 with the same errors).
 */
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError } from '../../api';
import { ErrorBox } from '../../components/feedback';
import { IssueList, type Issue } from '../../components/issues';
import { agentPath, type AgentDetail, type ValidateResult, type Versions } from './types';

const FORMATS = [
  { id: 'toml', type: 'application/toml', label: 'TOML' },
  { id: 'markdown', type: 'text/markdown', label: 'Markdown (Claude Code)' },
  { id: 'json', type: 'application/json', label: 'JSON' },
] as const;

interface DeployAnswer {
  agent: { name: string };
  version?: number;
  unchanged?: boolean;
  message?: string;
  rollout?: { candidate_version: number; strategy: string };
}

const TEMPLATE = `name = "my-agent"
description = "What this agent does"
capabilities = ["example"]
tools = []
system_prompt = """
You are a helpful agent.
"""
`;

export function AgentEditor({ existing, onDeployed }: { existing?: AgentDetail; onDeployed: (name: string) => void }) {
  const [text, setText] = useState(existing ? '' : TEMPLATE);
  const [format, setFormat] = useState<(typeof FORMATS)[number]['id']>(existing?.format ?? 'toml');
  const [strategy, setStrategy] = useState('direct');
  const [issues, setIssues] = useState<Issue[]>([]);
  const [warnings, setWarnings] = useState<Issue[]>([]);
  const [error, setError] = useState<unknown>();
  const [status, setStatus] = useState<string>();
  const [busy, setBusy] = useState(false);
  const fileManaged = existing?.origin.kind === 'file';

  // An existing agent's current source to start from.
  useEffect(() => {
    if (!existing) return;
    const ac = new AbortController();
    api<Versions>('GET', agentPath(existing.name, '/versions'), { query: { limit: 1 }, signal: ac.signal })
      .then((v) =>
        v.current === null
          ? undefined
          : api<{ source: string; format: 'toml' | 'markdown' | 'json' }>(
              'GET',
              agentPath(existing.name, `/versions/${v.current}`),
              { signal: ac.signal },
            ),
      )
      .then(
        (s) => {
          if (s) {
            setText(s.source);
            setFormat(s.format);
          }
        },
        (e: unknown) => {
          if (!ac.signal.aborted) setError(e);
        },
      );
    return () => ac.abort();
  }, [existing?.name]);

  const contentType = FORMATS.find((f) => f.id === format)!.type;
  const reset = () => {
    setIssues([]);
    setWarnings([]);
    setError(undefined);
    setStatus(undefined);
  };

  const validate = async (): Promise<boolean> => {
    const r = await api<ValidateResult>('POST', '/api/v1/agents/validate', { text, contentType });
    setIssues(r.errors);
    setWarnings(r.warnings);
    return r.valid;
  };

  const onValidate = async () => {
    reset();
    setBusy(true);
    try {
      if (await validate()) setStatus('Valid: nothing was deployed.');
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const onDeploy = async (e: Event) => {
    e.preventDefault();
    reset();
    setBusy(true);
    try {
      if (!(await validate())) return; // nothing is sent to be stored
      const query = strategy === 'direct' ? undefined : { strategy };
      const r = existing
        ? await api<DeployAnswer>('PUT', agentPath(existing.name), { text, contentType, ...(query && { query }) })
        : await api<DeployAnswer>('POST', '/api/v1/agents', { text, contentType });
      setStatus(
        'unchanged' in r && r.unchanged
          ? (r.message ?? 'Nothing changed.')
          : r.rollout
            ? `Deployed version ${r.rollout.candidate_version} as a ${r.rollout.strategy} rollout beside the live one: promote or roll it back under Versions and rollout.`
            : `Deployed ${r.agent.name}${r.version !== undefined ? ` as version ${r.version}` : ''}.`,
      );
      onDeployed(r.agent.name);
    } catch (err) {
      // The server's own refusal of an invalid body names every problem, located.
      if (err instanceof ApiError && Array.isArray(err.details.errors)) setIssues(err.details.errors as Issue[]);
      else setError(err);
    } finally {
      setBusy(false);
    }
  };

  const describedBy = ['agent-file-help', issues.length > 0 && 'agent-file-errors'].filter(Boolean).join(' ');
  return (
    <form onSubmit={onDeploy} class="editor" aria-labelledby="editor-title">
      <h3 id="editor-title">{existing ? `Edit ${existing.name}` : 'Deploy an agent'}</h3>
      {fileManaged && (
        <p class="notice">
          This agent comes from the file {existing.origin.kind === 'file' ? existing.origin.path : ''}; the server
          refuses API changes to it. Edit the file instead (you can still validate here).
        </p>
      )}
      <div class="row">
        <div>
          <label for="agent-format">Format</label>
          <select
            id="agent-format"
            value={format}
            onChange={(e) => setFormat((e.target as HTMLSelectElement).value as typeof format)}
          >
            {FORMATS.map((f) => (
              <option key={f.id} value={f.id}>
                {f.label}
              </option>
            ))}
          </select>
        </div>
        {existing && (
          <div>
            <label for="agent-strategy">Strategy</label>
            <select
              id="agent-strategy"
              value={strategy}
              onChange={(e) => setStrategy((e.target as HTMLSelectElement).value)}
            >
              <option value="direct">direct (live at once)</option>
              <option value="blue-green">blue-green (beside the live version until promoted)</option>
              <option value="canary">canary</option>
              <option value="shadow">shadow</option>
            </select>
          </div>
        )}
      </div>
      <label for="agent-file">Agent file</label>
      <textarea
        id="agent-file"
        class="code"
        spellcheck={false}
        value={text}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        aria-describedby={describedBy}
        aria-invalid={issues.length > 0 ? true : undefined}
      />
      <p id="agent-file-help" class="muted small">
        The file as it would be in agents/: TOML, Markdown with YAML frontmatter, or JSON. Validate checks it without
        deploying; Deploy validates first.
      </p>
      <IssueList
        id="agent-file-errors"
        issues={issues}
        label={`The server found ${issues.length} problem${issues.length === 1 ? '' : 's'}; nothing was deployed:`}
      />
      {warnings.length > 0 && (
        <ul class="issues small" aria-label="Warnings">
          {warnings.map((w, i) => (
            <li key={i}>
              {w.line !== undefined && <>line {w.line}: </>}
              {w.message}
            </li>
          ))}
        </ul>
      )}
      <ErrorBox error={error} />
      {status && (
        <p class="notice" role="status" data-testid="editor-status">
          {status}
        </p>
      )}
      <div class="row">
        <button type="button" class="secondary" disabled={busy} onClick={() => void onValidate()}>
          Validate
        </button>
        <button type="submit" disabled={busy || fileManaged}>
          {existing ? 'Deploy new version' : 'Deploy'}
        </button>
      </div>
    </form>
  );
}
