/**
 * The durable-runs cluster tests' messages: requests to the `slow` agent marked `[job-N]` (the
 * scripted model tells the runs apart by it), whether each was delivered, and how often each was
 * answered.
 */
import { expect } from 'vitest';
import { api } from '../../execution/helpers/runs.js';

/**
 * Sends request `i` of `ids` to `slow` through `urls[i % urls.length]` (a one-way `inform` with
 * `oneWay`: no conversation to lock, no answer); every one must be accepted.
 */
export async function sendSlowJobs(
  urls: readonly string[],
  ids: readonly string[],
  opts: { oneWay?: boolean } = {},
): Promise<void> {
  const sent = await Promise.all(
    ids.map((id, i) =>
      api(urls[i % urls.length]!, '/api/v1/messages', {
        method: 'POST',
        body: JSON.stringify({
          id,
          ...(opts.oneWay ? { performative: 'inform' } : { performative: 'request', protocol: 'fipa-request' }),
          sender: 'loader',
          receiver: 'slow',
          content: `[job-${i}]`,
        }),
      }),
    ),
  );
  expect(sent.map((r) => r.status)).toEqual(ids.map(() => 202));
}

/** Whether every delivery of message `id` is done. */
export async function delivered(url: string, id: string): Promise<boolean> {
  const r = await api<{ deliveries: { state: string }[] }>(url, `/api/v1/messages/${encodeURIComponent(id)}`);
  return r.status === 200 && r.body.deliveries.length > 0 && r.body.deliveries.every((d) => d.state === 'done');
}

/** The informs `sender` sent, counted by the id of the message each answers. */
export async function answersBy(url: string, sender: string): Promise<Map<string, number>> {
  const r = await api<{ messages: { in_reply_to?: string }[] }>(
    url,
    `/api/v1/messages?performative=inform&sender=${sender}&limit=1000`,
  );
  expect(r.status).toBe(200);
  const by = new Map<string, number>();
  for (const m of r.body.messages) if (m.in_reply_to) by.set(m.in_reply_to, (by.get(m.in_reply_to) ?? 0) + 1);
  return by;
}
