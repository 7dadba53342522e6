/**
 * The agent-file editor: a code editor (line numbers, TOML, Markdown and YAML highlighting),
 * validate (POST /api/v1/agents/validate, deploys nothing) and deploy (POST /api/v1/agents for a
 * new agent, PUT .../NAME for a new version, directly or as a blue-green, canary or shadow
 * rollout with its options). A new version is deployed only after its diff against the live
 * version was shown. Deploying validates first: an invalid file is never sent to be stored, and
 * the server's located errors are listed under the text; choosing one moves the cursor to it.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError } from '../../api';
import { ErrorBox } from '../../components/feedback';
import { IssueList, type Issue } from '../../components/issues';
import { fieldErrors } from '../../form-errors';
import type { EditorHandle } from './code-editor';
import { CodeEditor, DiffView } from './code-view';
import { agentPath, type AgentDetail, type ValidateResult, type Versions } from './types';

const FORMATS = [
  { id: 'toml', type: 'application/toml', label: 'TOML' },
  { id: 'markdown', type: 'text/markdown', label: 'Markdown (Claude Code)' },
  { id: 'json', type: 'application/json', label: 'JSON' },
] as const;
type Format = (typeof FORMATS)[number]['id'];

const STRATEGIES = [
  { id: 'direct', label: 'direct (live at once)' },
  { id: 'blue-green', label: 'blue-green (beside the live version until promoted)' },
  { id: 'canary', label: 'canary (a rising share of new conversations, judged by its figures)' },
  { id: 'shadow', label: 'shadow (a copy of live requests, answers compared, never returned)' },
] as const;

/** The canary's options (the API's query parameters), with their labels and hints. */
const CANARY_OPTIONS = [
  {
    id: 'stages',
    label: 'Stages (percent of new conversations)',
    hint: 'Rising, ending at 100, e.g. 5,25,50,100.',
    placeholder: '5,25,50,100',
  },
  { id: 'hold', label: 'Hold per stage', hint: 'At least this long per stage, e.g. 60s or 5m.', placeholder: '60s' },
  {
    id: 'min_requests',
    label: 'Requests per stage before judging',
    hint: "The candidate's executions a stage needs.",
    placeholder: '20',
  },
  {
    id: 'max_error_rate_increase',
    label: 'Largest error-rate increase',
    hint: "Rolls back when the candidate's error rate exceeds the stable one's by more (0 to 1).",
    placeholder: '0.05',
  },
  {
    id: 'max_latency_ratio',
    label: 'Largest p99 latency ratio',
    hint: "Rolls back when the candidate's p99 latency exceeds the stable one's times this.",
    placeholder: '2',
  },
] as const;
type CanaryOption = (typeof CANARY_OPTIONS)[number]['id'];

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

/** The server's issues for a request body name no file: drop its placeholder name. */
const located = (xs: Issue[]): Issue[] =>
  xs.map((i) => (i.file !== undefined && i.file.startsWith('<') ? (({ file: _f, ...rest }) => rest)(i) : i));

/** A refused deploy in the console's words where the server's message names the command line's flags and commands. */
function deployError(e: unknown, name: string): unknown {
  if (!(e instanceof ApiError)) return e;
  if (e.code === 'rollout_in_progress')
    return new Error(
      `A rollout of ${name} is running: promote it or roll it back under Versions and rollout before deploying another version. (${e.message.replace(/;? ?end it first.*$|: end it first.*$/, '')})`,
    );
  if (e.code === 'agent_not_found' && e.message.includes('--strategy'))
    return new Error(
      `${name} has no live version for a rollout to run beside: deploy it with the direct strategy first.`,
    );
  return e;
}

export function AgentEditor({ existing, onDeployed }: { existing?: AgentDetail; onDeployed: (name: string) => void }) {
  const [text, setText] = useState(existing ? '' : TEMPLATE);
  const [live, setLive] = useState<{ source: string; format: Format; version: number }>();
  const [format, setFormat] = useState<Format>(existing?.format ?? 'toml');
  const [strategy, setStrategy] = useState('direct');
  const [canary, setCanary] = useState<Partial<Record<CanaryOption, string>>>({});
  const [issues, setIssues] = useState<Issue[]>([]);
  const [warnings, setWarnings] = useState<Issue[]>([]);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>();
  const [status, setStatus] = useState<string>();
  const [busy, setBusy] = useState(false);
  /** The reviewed text: its diff is shown and Deploy now sends exactly it. */
  const [review, setReview] = useState<string>();
  const editor = useRef<EditorHandle>();
  const fileManaged = existing?.origin.kind === 'file';

  // An existing agent's current source to start from (and to compare with before deploying).
  useEffect(() => {
    if (!existing) return;
    const ac = new AbortController();
    api<Versions>('GET', agentPath(existing.name, '/versions'), { query: { limit: 1 }, signal: ac.signal })
      .then((v) =>
        v.current === null
          ? undefined
          : api<{ source: string; format: Format; version: number }>(
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
            setLive(s);
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
    setFields({});
    setError(undefined);
    setStatus(undefined);
  };

  const validate = async (): Promise<boolean> => {
    const r = await api<ValidateResult>('POST', '/api/v1/agents/validate', { text, contentType });
    setIssues(located(r.errors));
    setWarnings(located(r.warnings));
    return r.valid;
  };

  const run = async (what: () => Promise<void>) => {
    reset();
    setBusy(true);
    try {
      await what();
    } catch (err) {
      // The server's own refusal of an invalid body names every problem, located.
      if (err instanceof ApiError && Array.isArray(err.details.errors))
        setIssues(located(err.details.errors as Issue[]));
      else {
        const f = fieldErrors(err);
        if (f && Object.keys(f).every((k) => CANARY_OPTIONS.some((o) => o.id === k) || k === 'strategy')) setFields(f);
        else setError(deployError(err, existing?.name ?? 'This agent'));
      }
    } finally {
      setBusy(false);
    }
  };

  const onValidate = () =>
    run(async () => {
      if (await validate()) setStatus('Valid: nothing was deployed.');
    });

  const deploy = (body: string) =>
    run(async () => {
      const query =
        strategy === 'direct'
          ? undefined
          : {
              strategy,
              ...(strategy === 'canary' &&
                Object.fromEntries(Object.entries(canary).filter(([, v]) => v !== undefined && v.trim() !== ''))),
            };
      const r = existing
        ? await api<DeployAnswer>('PUT', agentPath(existing.name), {
            text: body,
            contentType,
            ...(query && { query }),
          })
        : await api<DeployAnswer>('POST', '/api/v1/agents', { text: body, contentType });
      setReview(undefined);
      setStatus(
        'unchanged' in r && r.unchanged
          ? 'Nothing changed: the text is the same as the live version.'
          : r.rollout
            ? `Deployed version ${r.rollout.candidate_version} as a ${r.rollout.strategy} rollout beside the live one: follow it, promote or roll it back under Versions and rollout.`
            : `Deployed ${r.agent.name}${r.version !== undefined ? ` as version ${r.version}` : ''}.`,
      );
      onDeployed(r.agent.name);
    });

  const onSubmit = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      if (!(await validate())) return; // nothing is sent to be stored
      // A new version is shown against the live one before it is sent.
      if (existing && live) setReview(text);
      else await deploy(text);
    });
  };

  const pick = (i: Issue) => {
    if (i.line !== undefined) editor.current?.goTo(i.line, i.column);
  };

  const describedBy = ['agent-file-help', issues.length > 0 && 'agent-file-errors'].filter(Boolean).join(' ');
  return (
    <form onSubmit={onSubmit} class="editor" aria-labelledby="editor-title" noValidate>
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
            onChange={(e) => setFormat((e.target as HTMLSelectElement).value as Format)}
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
              {STRATEGIES.map((s) => (
                <option key={s.id} value={s.id}>
                  {s.label}
                </option>
              ))}
            </select>
          </div>
        )}
      </div>
      {existing && strategy === 'canary' && (
        <fieldset class="canary-options" data-testid="canary-options">
          <legend>Canary options (empty: the file's [rollout] values, else the defaults shown)</legend>
          {CANARY_OPTIONS.map((o) => (
            <div key={o.id} class="field">
              <label for={`canary-${o.id}`}>{o.label}</label>
              <input
                id={`canary-${o.id}`}
                value={canary[o.id] ?? ''}
                placeholder={o.placeholder}
                autoComplete="off"
                aria-describedby={`canary-${o.id}-hint${fields[o.id] ? ` canary-${o.id}-error` : ''}`}
                aria-invalid={fields[o.id] ? true : undefined}
                onInput={(e) => setCanary((c) => ({ ...c, [o.id]: (e.target as HTMLInputElement).value }))}
              />
              <p id={`canary-${o.id}-hint`} class="muted small">
                {o.hint}
              </p>
              {fields[o.id] && (
                <p id={`canary-${o.id}-error`} class="field-error" role="alert">
                  {fields[o.id]}
                </p>
              )}
            </div>
          ))}
        </fieldset>
      )}
      <p class="label-text" aria-hidden="true">
        Agent file
      </p>
      <CodeEditor
        value={text}
        format={format}
        label="Agent file"
        onChange={(t) => {
          setText(t);
          if (review !== undefined) setReview(undefined);
        }}
        handle={editor}
        problemLines={issues.flatMap((i) => (i.line === undefined ? [] : [i.line]))}
        aria={{
          'aria-describedby': describedBy,
          ...(issues.length > 0 && { 'aria-invalid': 'true' }),
        }}
      />
      <p id="agent-file-help" class="muted small">
        The file as it would be in agents/: TOML, Markdown with YAML frontmatter, or JSON. Validate checks it without
        deploying;{' '}
        {existing
          ? 'Review and deploy validates, then shows what changes against the live version.'
          : 'Deploy validates first.'}
      </p>
      <IssueList
        id="agent-file-errors"
        issues={issues}
        label={`The server found ${issues.length} problem${issues.length === 1 ? '' : 's'}; nothing was deployed. Choose one to go to its line:`}
        onPick={pick}
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
      {review !== undefined && live && (
        <section class="card" aria-labelledby="review-title" data-testid="deploy-review">
          <h4 id="review-title">
            What changes against the live version {live.version}
            {strategy !== 'direct' && <> (as a {strategy} rollout)</>}
          </h4>
          <DiffView
            original={live.source}
            modified={review}
            format={format}
            label={`Changes from version ${live.version}`}
          />
          <div class="row">
            <button type="button" class="secondary" onClick={() => setReview(undefined)}>
              Back to editing
            </button>
            <button type="button" disabled={busy} onClick={() => void deploy(review)}>
              Deploy now
            </button>
          </div>
        </section>
      )}
      <div class="row">
        <button type="button" class="secondary" disabled={busy} onClick={() => void onValidate()}>
          Validate
        </button>
        <button type="submit" disabled={busy || fileManaged}>
          {existing ? 'Review and deploy' : 'Deploy'}
        </button>
      </div>
    </form>
  );
}
