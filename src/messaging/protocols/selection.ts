import type { AclMessage, Content } from '../message.js';

export type SelectRule = 'lowest' | 'highest' | 'first';

export interface Selection {
  rule: SelectRule;
  field: string;
}

const NUMBER_RE = /-?\d+(?:\.\d+)?/;

/**
 * The number a proposal offers for `field`: the field of a JSON object, else "field: 12" (or
 * "field = 12") in the text, else the first number in the text; undefined when there is none.
 */
export function proposalValue(content: Content, field: string): number | undefined {
  if (typeof content === 'object' && content !== null && !Array.isArray(content)) {
    const v = (content as Record<string, Content>)[field];
    if (typeof v === 'number') return v;
    if (typeof v === 'string' && NUMBER_RE.test(v)) return Number(NUMBER_RE.exec(v)![0]);
    return undefined;
  }
  const text = typeof content === 'string' ? content : JSON.stringify(content);
  const escaped = field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // Up to three separators between the name and the number, but never its minus sign.
  const named = new RegExp(`${escaped}[^\\w-]{0,3}\\s*[:=]?\\s*\\$?\\s*(-?\\d+(?:\\.\\d+)?)`, 'i').exec(text);
  if (named) return Number(named[1]);
  const any = NUMBER_RE.exec(text);
  return any ? Number(any[0]) : undefined;
}

/** The selection rule of a cfp: its X-select / X-select-field parameters, else the defaults. */
export function selectionOf(cfp: AclMessage, defaults: Selection): Selection {
  const r = cfp.params['X-select']?.toLowerCase();
  const rule: SelectRule = r === 'lowest' || r === 'highest' || r === 'first' ? r : defaults.rule;
  return { rule, field: cfp.params['X-select-field'] ?? defaults.field };
}

/**
 * Picks the winning proposal: the lowest or highest value of the field (proposals without one
 * rank last), or the first received; ties go to the earlier proposal.
 */
export function chooseWinner(proposals: readonly AclMessage[], sel: Selection): AclMessage | undefined {
  if (proposals.length === 0) return undefined;
  if (sel.rule === 'first') return proposals[0];
  let best: AclMessage | undefined;
  let bestValue: number | undefined;
  for (const p of proposals) {
    const v = proposalValue(p.content, sel.field);
    if (v === undefined) continue;
    if (bestValue === undefined || (sel.rule === 'lowest' ? v < bestValue : v > bestValue)) {
      best = p;
      bestValue = v;
    }
  }
  return best ?? proposals[0];
}
