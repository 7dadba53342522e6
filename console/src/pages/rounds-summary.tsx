/**
 * An auction or iterated Contract Net at a glance: each round's call (its asking price or best
 * offer), who bid and who dropped out, and the award, beside the sequence diagram.
 */
import type { AclMessage } from './messaging-common';
import { targetsOf } from './messaging-common';

const TITLES: Record<string, string> = {
  'fipa-english-auction': 'English auction',
  'fipa-dutch-auction': 'Dutch auction',
  'fipa-iterated-contract-net': 'Iterated Contract Net',
};

export const isRoundProtocol = (p: string | null | undefined): boolean => p !== null && p !== undefined && p in TITLES;

/** The figure a round's call names: the asking price (auctions) or the best offer so far (iterated call). */
function figureOf(cfp: AclMessage, first: AclMessage): string {
  const price = cfp.params['X-price'] ?? (cfp === first ? first.params['X-start-price'] : undefined);
  if (price !== undefined) return `asking ${price}`;
  const best = (cfp.content as { best_offer?: unknown } | null)?.best_offer;
  return typeof best === 'number' ? `best offer so far ${best}` : 'first call';
}

export function RoundsSummary({ protocol, messages }: { protocol: string; messages: readonly AclMessage[] }) {
  const calls = messages.filter((m) => m.performative === 'cfp');
  const first = calls[0];
  const answersTo = (cfp: AclMessage, p: string) =>
    messages.filter((m) => m.performative === p && m.in_reply_to === (cfp.reply_with ?? cfp.id)).map((m) => m.sender);
  const award = messages.find((m) => m.performative === 'accept-proposal');
  const price = (award?.content as { price?: unknown } | undefined)?.price;
  const list = (xs: string[]) => (xs.length === 0 ? 'none' : xs.join(', '));
  return (
    <section class="card cnp" aria-labelledby="rounds-title" data-testid="rounds-summary">
      <h2 id="rounds-title">{TITLES[protocol] ?? protocol}</h2>
      {!first ? (
        <p class="muted">No call seen yet.</p>
      ) : (
        <ol data-testid="rounds">
          {calls.map((cfp, i) => (
            <li key={cfp.id}>
              Round {i + 1} ({figureOf(cfp, first)}) to {targetsOf(cfp).join(', ')}: bids from{' '}
              {list(answersTo(cfp, 'propose'))}; out: {list(answersTo(cfp, 'refuse'))}
            </li>
          ))}
        </ol>
      )}
      <p data-testid="rounds-award">
        {award
          ? `Won by ${award.receivers.join(', ')}${typeof price === 'number' ? ` at ${price}` : ''}`
          : 'Not decided yet'}
      </p>
    </section>
  );
}
