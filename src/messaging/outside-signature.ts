/**
 * Messages from outside signed by their caller (ADR 0115). A principal's Ed25519 public key is
 * registered (POST /api/v1/signing-keys/principals), endorsed by the trust anchor like every key
 * row; a message that principal submits may then carry `signature: { key, signed_at, value }`.
 *
 * What the caller signs is known before the server assigns anything: the bytes of
 * `JSON.stringify(["caxton-signed-message-v1", key, signed_at, body])`, where `body` is the
 * message object as sent without `signature`, its object keys sorted at every depth (the JSON
 * canonicalization of RFC 8785 for the values JSON holds). A signed message names its own `id`
 * and its `sender`, so the signature covers who sends it and which message it is; `signed_at`
 * must be within SIGNED_AT_SKEW_MS of the server's clock. Each (key, id) is accepted once while
 * the signed-delivery seen-set remembers it (longer than the skew), so a copy sent again is
 * refused as a replay, on a cluster too.
 */
import { verify as edVerify } from 'node:crypto';
import { principalOwner, type SigningKeyStore } from '../auth/index.js';
import { CaxtonError } from '../shared/errors.js';
import type { SignedBy } from './message.js';

/** How far a signed message's `signed_at` may be from the server's clock, either way. */
export const SIGNED_AT_SKEW_MS = 5 * 60_000;

/** The first element of the signed array: names the form, so a signature over another form never matches. */
export const SUBMISSION_FORM = 'caxton-signed-message-v1';

/** A JSON value with every object's keys sorted, so equal values have one text. */
function sortedJson(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(sortedJson);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) out[k] = sortedJson((v as Record<string, unknown>)[k]);
  return out;
}

/** The bytes a caller signs: the form's name, its key, when it signed and the body without `signature`. */
export function submittedForm(body: Record<string, unknown>, key: string, signedAt: string): string {
  const { signature: _ignored, ...rest } = body;
  return JSON.stringify([SUBMISSION_FORM, key, signedAt, sortedJson(rest)]);
}

const refused = (reason: string, message: string, details: Record<string, unknown> = {}): CaxtonError =>
  new CaxtonError('forbidden', message, { reason, field: 'signature', ...details });

const badField = (field: string, message: string): CaxtonError =>
  new CaxtonError('invalid_message', `invalid message: ${field}: ${message}`, { issues: [{ field, message }] });

/**
 * Checks a submitted body's `signature` for the caller `principal` (its id): well formed, by an
 * active key registered for that principal and endorsed by the trust anchor, signed within the
 * skew, over the body as it is. Returns the body without `signature` and who signed it; throws
 * 400 for a malformed signature or body, 403 naming the reason otherwise.
 */
export function checkSubmission(
  keys: SigningKeyStore,
  body: Record<string, unknown>,
  principal: string,
  now: number = Date.now(),
): { body: Record<string, unknown>; signedBy: SignedBy } {
  const sig = body.signature as Record<string, unknown> | null;
  if (
    typeof sig !== 'object' ||
    sig === null ||
    Array.isArray(sig) ||
    typeof sig.key !== 'string' ||
    typeof sig.value !== 'string' ||
    typeof sig.signed_at !== 'string' ||
    Object.keys(sig).some((k) => k !== 'key' && k !== 'value' && k !== 'signed_at')
  )
    throw badField(
      'signature',
      'expected { "key": your registered signing key id, "signed_at": an ISO 8601 time, "value": the base64 Ed25519 signature }',
    );
  const { key, value, signed_at: signedAt } = sig as { key: string; value: string; signed_at: string };
  if (typeof body.id !== 'string')
    throw badField('id', 'a signed message carries its own id: the signature covers it, and it is accepted once');
  if (typeof body.sender !== 'string')
    throw badField('sender', `a signed message names its sender (you: ${principal}); the signature covers it`);
  const at = Date.parse(signedAt);
  if (!Number.isFinite(at)) throw badField('signature.signed_at', `"${signedAt.slice(0, 60)}" is not an ISO 8601 time`);
  if (Math.abs(now - at) > SIGNED_AT_SKEW_MS)
    throw refused(
      'signature_expired',
      `the signature was made at ${signedAt}, more than ${SIGNED_AT_SKEW_MS / 60_000} minutes from the server's time (${new Date(now).toISOString()}); sign the message again now (check the clock)`,
    );
  const k = keys.verifyingKey(key);
  const owner = principalOwner(principal);
  if (!k)
    throw refused(
      'signature_key',
      `signing key ${key.slice(0, 60)} is not registered; register it with caxton key register-signing`,
    );
  if (k.record.owner !== owner)
    throw refused(
      'signature_key',
      `signing key ${key} is not registered for you (${principal}); sign with your own key`,
    );
  if (k.record.retired_at !== null)
    throw refused('signature_key', `signing key ${key} is retired; sign with ${principal}'s active key`);
  if (!k.anchored)
    throw refused('signature_key', `signing key ${key} is not endorsed by this node's trust anchor; register it again`);
  let ok: boolean;
  try {
    ok = edVerify(null, Buffer.from(submittedForm(body, key, signedAt)), k.publicKey, Buffer.from(value, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok)
    throw refused(
      'signature_invalid',
      `the signature does not match the message: sign ${JSON.stringify([SUBMISSION_FORM, key, signedAt, '<the message without "signature", keys sorted>'])} with the private half of ${key}`,
    );
  const { signature: _ignored, ...rest } = body;
  return { body: rest, signedBy: { key, principal, signed_at: signedAt, value } };
}

/** The seen-set receiver a signed submission is remembered under (its key's: ids are the caller's own). */
export const submissionSeenAs = (key: string): string => `submitted:${key}`;

/** The refusal of a signed message sent again. */
export function replayedSubmission(id: string): CaxtonError {
  return new CaxtonError(
    'conflict',
    `signed message ${id} was accepted already: a signed message is accepted once (GET /api/v1/messages/${id} shows it); to send again, sign a new message with a new id`,
    { reason: 'replayed', field: 'id', id },
  );
}
