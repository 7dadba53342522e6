import type { ConversationBids } from '../../messaging/index.js';
import { table, truncate } from '../output.js';

/**
 * The bids of a conversation as `caxton conversation show` prints them: per round, each bid's
 * rank, values (and how each was read), its other fields and its outcome; then the winner and why.
 */
export function bidsLines(bids: ConversationBids): string[] {
  const lines = [`bids (rule: ${bids.rule}):`];
  for (const r of bids.rounds) {
    if (bids.rounds.length > 1 || r.asking_price !== undefined)
      lines.push(`  round ${r.round}${r.asking_price !== undefined ? ` (asking ${r.asking_price})` : ''}:`);
    if (r.bids.length === 0) lines.push('    (no proposals)');
    else
      lines.push(
        ...table(
          ['RANK', 'BIDDER', 'VALUES', 'OTHER FIELDS', 'OUTCOME'],
          r.bids.map((b) => [
            `#${b.rank}`,
            b.sender,
            Object.entries(b.values)
              .map(([f, v]) => `${f} ${v.value} (${v.source === 'text' ? `read from "${v.read_from}"` : v.source})`)
              .join(', ') || '(none)',
            truncate(
              b.fields
                ? Object.entries(b.fields)
                    .filter(([f]) => !(f in b.values))
                    .map(([f, v]) => `${f}=${String(v)}`)
                    .join(' ')
                : `text: ${b.text ?? ''}`,
              60,
            ),
            b.outcome ?? '-',
          ]),
        )
          .split('\n')
          .map((l) => `    ${l}`),
      );
    for (const f of r.refused) lines.push(`    ${f.performative}: ${f.sender} — ${truncate(f.reason, 80)}`);
  }
  lines.push(`winner: ${bids.winner ? bids.winner.sender : '(none)'} — ${bids.why}`);
  return lines;
}
