/**
 * The bids of a conversation with a call for proposals, as the conversation API ranks them
 * (src/messaging/protocols/bids.ts): each bid's values and how each was read (typed, read from
 * text, or the round's asking price), its other fields, its rank and outcome; the rule; the
 * winner and why. Reloaded as messages arrive, so the ranking follows the conversation.
 */
import { useEffect, useRef } from 'preact/hooks';
import { useApi } from '../hooks';

interface BidValue {
  value: number;
  source: 'typed' | 'text' | 'asking';
  read_from?: string;
}

interface Bid {
  rank: number;
  message_id: string;
  sender: string;
  source: 'typed' | 'text';
  values: Record<string, BidValue>;
  fields?: Record<string, string | number | boolean | null>;
  text?: string;
  outcome?: 'accepted' | 'rejected';
}

export interface BidsDoc {
  rule: string;
  rounds: {
    round: number;
    cfp_id: string;
    asking_price?: number;
    bids: Bid[];
    refused: { sender: string; performative: string; reason: string }[];
  }[];
  winner: { sender: string; message_id: string; round: number } | null;
  why: string;
}

function how(v: BidValue): string {
  if (v.source === 'text') return `read from text: “${v.read_from ?? ''}”`;
  return v.source === 'asking' ? 'the asking price' : 'typed';
}

/** `version` changes when the conversation does (a message, a state): the ranking is fetched again. */
export function BidsSummary({ path, version }: { path: string; version: string }) {
  const doc = useApi<{ bids: BidsDoc | null }>(path, { limit: '1' });
  const { reload } = doc;
  const loaded = useRef(false);
  // The first version is the one just loaded; each later one loads the ranking again.
  useEffect(() => {
    if (loaded.current) reload();
    loaded.current = true;
  }, [version]);
  const bids = doc.data?.bids;
  if (!bids) return null;
  return (
    <section class="card bids" aria-labelledby="bids-title" data-testid="bids">
      <h2 id="bids-title">Bids</h2>
      <p>
        Rule: <strong data-testid="bids-rule">{bids.rule}</strong>
      </p>
      {bids.rounds.map((r) => (
        <div key={r.cfp_id}>
          {(bids.rounds.length > 1 || r.asking_price !== undefined) && (
            <h3>
              Round {r.round}
              {r.asking_price !== undefined && ` (asking ${r.asking_price})`}
            </h3>
          )}
          {r.bids.length === 0 ? (
            <p class="muted">No proposals.</p>
          ) : (
            <div class="table-wrap" tabIndex={0} role="region" aria-label={`Bids of round ${r.round}, best first`}>
              <table data-testid="bids-table">
                <caption class="visually-hidden">Bids of round {r.round}, ranked by the rule</caption>
                <thead>
                  <tr>
                    <th scope="col">Rank</th>
                    <th scope="col">Bidder</th>
                    <th scope="col">Values</th>
                    <th scope="col">Other fields</th>
                    <th scope="col">Outcome</th>
                  </tr>
                </thead>
                <tbody>
                  {r.bids.map((b) => (
                    <tr key={b.message_id} data-testid="bid-row">
                      <td>{b.rank}</td>
                      <td>{b.sender}</td>
                      <td>
                        {Object.entries(b.values).length === 0
                          ? 'none'
                          : Object.entries(b.values).map(([f, v]) => (
                              <span key={f} class="bid-value">
                                {f} <strong>{v.value}</strong> <span class="muted small">({how(v)})</span>{' '}
                              </span>
                            ))}
                      </td>
                      <td>
                        {b.fields
                          ? Object.entries(b.fields)
                              .filter(([f]) => !(f in b.values))
                              .map(([f, v]) => `${f}: ${String(v)}`)
                              .join(', ') || '—'
                          : b.text}
                      </td>
                      <td>{b.outcome ?? '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {r.refused.length > 0 && (
            <p class="small">
              Did not bid: {r.refused.map((f) => `${f.sender} (${f.performative}: ${f.reason})`).join('; ')}
            </p>
          )}
        </div>
      ))}
      <p data-testid="bids-why">
        {bids.winner ? (
          <>
            Winner: <strong>{bids.winner.sender}</strong> —{' '}
          </>
        ) : null}
        {bids.why}
      </p>
    </section>
  );
}
