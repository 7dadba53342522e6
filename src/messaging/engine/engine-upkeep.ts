import { CaxtonError, describeError } from '../../shared/errors.js';
import { isTerminal } from '../conversation.js';
import type { AclMessage, MessageId } from '../message.js';
import { PLATFORM } from '../submission.js';
import type { Delivery } from '../dispatcher.js';
import { replyTo } from '../bus-rules.js';
import { afterParticipantFailed, atDeadline, participantFailure, participantOnly } from '../protocols/index.js';
import type { EngineStep } from './ports.js';
import { iso, notificationOf, StepWork, type Subscribers } from './step-work.js';
import { stepEffects } from './engine-effects.js';
import { setState, type StepWriter } from './engine-writes.js';

/*
 * The engine's steps that no handler's answer runs: notices to a subscription's subscriber, the
 * sweep of conversations whose deadline passed, a delivery dead-lettered, and a dead letter put back. Each is a step of its
 * conversation written through the engine's `StepWriter`, its effects leaving once it committed.
 */

/** Forwards accepted informs to their subscribers, each notification a step of the subscription's conversation. */
export async function forward(w: StepWriter, informs: readonly AclMessage[], subscribers: Subscribers): Promise<void> {
  const o = w.o;
  for (const [i, m] of informs.entries()) {
    try {
      for (const sub of await subscribers[i]!) {
        if (sub.subscriber === m.sender) continue;
        const isAgent = o.directory.get(sub.subscriber) !== undefined;
        let note = notificationOf(m, sub, isAgent);
        if (isAgent && o.tracer) note = w.traceRoute(note);
        const { work } = await w.inStep(sub.conversation_id, async (s, work) => {
          const conv = s.conversation;
          if (!conv || isTerminal(conv.state)) return;
          if (conv.turns + 1 > conv.max_turns) {
            setState(
              conv,
              'completed',
              `turn limit reached: at most ${conv.max_turns} messages per conversation`,
              work,
            );
            await s.deleteSubscription(conv.id);
          } else await w.storeMessage(s, conv, note, isAgent ? [sub.subscriber] : [], iso(), work);
          await s.saveConversation(conv);
        });
        o.emit(work.events);
        await w.publishAfter(work.outgoing);
      }
    } catch (e) {
      o.log.warn({ message_id: m.id, err: describeError(e) }, 'could not notify the subscribers of an inform');
    }
  }
}

/** Handles the conversations whose deadline passed: a Contract Net still collecting is decided, anything else expires. */
export async function sweep(w: StepWriter): Promise<void> {
  if (!w.o.running()) return;
  // Handed out once `expired` returns, when every step it ran has committed: a delivery published
  // before its row is written would be read as missing and dropped.
  const works: StepWork[] = [];
  try {
    await w.store.expired(iso(), 100, async (s) => {
      const conv = s.conversation;
      const work = new StepWork();
      const fx = stepEffects(w, s, conv, work);
      await atDeadline(conv, await s.outstanding(), () => s.messages(), w.cfg, fx);
      await Promise.all(fx.pending);
      if (!isTerminal(conv.state) && conv.expires_at !== null && Date.parse(conv.expires_at) <= Date.now())
        conv.expires_at = iso(Date.now() + w.cfg.conversation_ttl);
      await s.saveConversation(conv);
      works.push(work);
    });
  } catch (e) {
    w.o.log.warn({ err: describeError(e) }, 'the conversation deadline sweep failed; it runs again in a second');
  } finally {
    for (const work of works) {
      w.o.emit(work.events);
      void w.publishAfter(work.outgoing);
    }
  }
}

/**
 * Puts a dead letter back with fresh attempts. Its conversation is reopened when it failed
 * (or expired) because of it, so the reply can complete it.
 */
export async function replay(
  w: StepWriter,
  d: { message: AclMessage; message_id: MessageId; receiver: string },
  id: number,
): Promise<{ id: number; message_id: MessageId; receiver: string }> {
  const tag = `:replay:${Date.now()}`;
  const { out: ok, work } = await w.inStep(
    d.message.conversation_id,
    async (s, work) => {
      const row = await s.delivery(id);
      if (!row || row.state !== 'dead') return false;
      const now = iso();
      await s.setDelivery(id, { state: 'pending', attempts: 0, next_at: 0, publish_tag: tag }, now);
      const conv = s.conversation;
      // The one move back the state machine allows, saved in the same step as the replay.
      if (conv && (conv.state === 'failed' || conv.state === 'expired')) {
        conv.state = 'in_progress';
        conv.reason = null;
        conv.updated_at = now;
        conv.expires_at = iso(Date.now() + w.cfg.conversation_ttl);
        work.event({
          type: 'state',
          conversation_id: conv.id,
          conversation: { ...conv, participants: [...conv.participants] },
        });
        await s.saveConversation(conv);
      }
      return true;
    },
    { delivery: id },
  );
  if (!ok) throw new CaxtonError('conflict', `dead letter ${id} was replayed already`);
  w.o.emit(work.events);
  await w.queue.publish([{ id, receiver: d.receiver, message: d.message, attempts: 0, tag }]);
  return { id, message_id: d.message_id, receiver: d.receiver };
}

/**
 * The step that dead-letters delivery `d`: its row goes dead and the platform's `failure` reply is
 * stored. Returns whether the failure is the participant's alone (protocols/participants.ts): then
 * the protocol goes on without it; otherwise the conversation fails with `why`.
 */
export async function deadLetterStep(
  w: StepWriter,
  s: EngineStep,
  work: StepWork,
  d: Delivery,
  why: string,
  reason: string,
): Promise<boolean> {
  const m = d.message;
  const row = await s.delivery(d.id);
  if (!row || row.state !== 'pending') return false;
  const now = iso();
  await s.setDelivery(d.id, { state: 'dead', attempts: d.attempts, last_error: why }, now);
  const conv = s.conversation;
  const alone = conv !== undefined && !isTerminal(conv.state) && participantOnly(conv, m, d.receiver);
  const reply = replyTo(
    m,
    PLATFORM,
    'failure',
    alone ? participantFailure(d.receiver, why, reason, d.id) : { reason, message: why, dead_letter: d.id },
  );
  if (!conv) {
    await s.insertMessage(w.signed(reply), []);
    return false;
  }
  await w.storeMessage(s, conv, reply, [], now, work);
  if (alone) {
    const fx = stepEffects(w, s, conv, work);
    await afterParticipantFailed(conv, () => s.messages(), w.cfg, fx);
    await Promise.all(fx.pending);
  } else setState(conv, 'failed', why, work);
  await s.saveConversation(conv);
  return alone;
}
