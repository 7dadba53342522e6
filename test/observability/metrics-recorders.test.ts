/**
 * The hot-path recorders of src/observability/metrics.ts: each label set gets its own series,
 * found again on every later recording, whatever the number of labels.
 */
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';

async function series(m: Metrics, name: string): Promise<string[]> {
  const text = await m.registry.getSingleMetricAsString(name);
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

describe('metric recorders', () => {
  it('keeps one series per label set, for one to four labels', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.llm('openai', 'gpt', 1, 10, 2);
    m.llm('openai', 'gpt', 2, 5, 1);
    m.llm('anthropic', 'gpt', 1, 7, 3);
    m.execution('a', 'ok', 0.01);
    m.execution('a', 'timeout', 0.02);
    m.execution('b', 'ok', 0.03);
    m.rolloutExecution('a', 2, 'candidate', 'ok', 0.01);
    m.rolloutExecution('a', 2, 'candidate', 'ok', 0.01);
    m.rolloutExecution('a', 1, 'stable', 'ok', 0.01);
    m.error('not_found');
    m.error('not_found');
    m.anonymousRefused('no such reason');

    expect(await series(m, 'caxton_llm_tokens_total')).toEqual([
      'caxton_llm_tokens_total{provider="openai",model="gpt",kind="input"} 15',
      'caxton_llm_tokens_total{provider="openai",model="gpt",kind="output"} 3',
      'caxton_llm_tokens_total{provider="anthropic",model="gpt",kind="input"} 7',
      'caxton_llm_tokens_total{provider="anthropic",model="gpt",kind="output"} 3',
    ]);
    expect(await series(m, 'caxton_llm_requests_total')).toEqual([
      'caxton_llm_requests_total{provider="openai",model="gpt",status="ok"} 3',
      'caxton_llm_requests_total{provider="anthropic",model="gpt",status="ok"} 1',
    ]);
    expect(await series(m, 'caxton_agent_executions_total')).toEqual([
      'caxton_agent_executions_total{agent="a",status="ok"} 1',
      'caxton_agent_executions_total{agent="a",status="timeout"} 1',
      'caxton_agent_executions_total{agent="b",status="ok"} 1',
    ]);
    expect(await series(m, 'caxton_rollout_executions_total')).toEqual([
      'caxton_rollout_executions_total{agent="a",version="2",role="candidate",status="ok"} 2',
      'caxton_rollout_executions_total{agent="a",version="1",role="stable",status="ok"} 1',
    ]);
    expect(await series(m, 'caxton_errors_total')).toEqual(['caxton_errors_total{code="not_found"} 2']);
    expect(await series(m, 'caxton_auth_anonymous_refusals_total')).toEqual([
      'caxton_auth_anonymous_refusals_total{reason="other"} 1',
    ]);
    const text = await m.registry.getSingleMetricAsString('caxton_agent_execution_duration_seconds');
    expect(text).toContain('caxton_agent_execution_duration_seconds_count{agent="a"} 2');
    expect(text).toContain('caxton_agent_execution_duration_seconds_count{agent="b"} 1');
  });
});
