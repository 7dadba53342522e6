/**
 * Words the server defines that the console offers in its filters. The console cannot import the
 * server's modules (they pull in Node), so these are copies; test/console/console-helpers.test.ts
 * checks them against src/messaging/performatives.ts and src/observability/agent-events.ts.
 */

/** The FIPA communicative acts, as the server accepts them. */
export const FIPA_ACTS = [
  'accept-proposal',
  'agree',
  'cancel',
  'cfp',
  'confirm',
  'disconfirm',
  'failure',
  'inform',
  'inform-if',
  'inform-ref',
  'not-understood',
  'propagate',
  'propose',
  'proxy',
  'query-if',
  'query-ref',
  'refuse',
  'reject-proposal',
  'request',
  'request-when',
  'request-whenever',
  'subscribe',
] as const;

/** The agent event types of GET /api/v1/events. */
export const EVENT_TYPES = [
  'agent.deployed',
  'agent.updated',
  'agent.removed',
  'agent.invalid_file',
  'rollout.started',
  'rollout.stage_advanced',
  'rollout.promoted',
  'rollout.rolled_back',
  'run.awaiting_approval',
  'run.approval_decided',
  'message.sent',
  'message.received',
  'execution.finished',
] as const;

/** A durable run's states (GET /api/v1/runs?status=), in the order a run goes through them. */
export const RUN_STATUSES = ['running', 'awaiting_approval', 'completed', 'failed', 'cancelled'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** What started a durable run (GET /api/v1/runs?origin=). */
export const RUN_ORIGINS = ['invoke', 'background', 'message', 'openai', 'mcp', 'a2a'] as const;
