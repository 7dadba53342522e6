import { yaml } from './yaml.js';
import { MAX_INPUT_DEPTH, valueDepth } from '../shared/depth.js';

/**
 * Bounds on agent documents from outside (agents_dir files, API bodies), checked before anything
 * that recurses or expands: nesting depth per field, YAML structure depth before the YAML parser
 * runs, YAML alias expansion, and the size of an agent file.
 *
 * Why: the YAML parser's composer recurses (≈ 800 levels overflow it, and 100,000 levels take
 * seconds in its CST parser), JSON.parse of deep text is slow, and everything after parsing
 * (structuredClone, zod, JSON.stringify, the template renderer) recurses too. Unbounded, a hostile
 * file in agents_dir would crash the watcher and then every restart.
 */

/** Largest agent file read from agents_dir (API bodies are bounded by `[server] max_body_size`). */
export const MAX_AGENT_FILE_BYTES = 1024 * 1024;

/**
 * Structure levels (indentation, `- `/`? `/`: ` indicators, flow brackets) the YAML frontmatter
 * may open before it is refused unparsed. A coarse upper bound of the real depth, set well above
 * MAX_INPUT_DEPTH (checked exactly after parsing) and well below where the YAML parser overflows.
 */
export const MAX_YAML_STRUCTURE_DEPTH = 4 * MAX_INPUT_DEPTH;

/** yaml's `maxAliasCount`: how far aliases may expand (it also stops nested "billion laughs" expansion). */
export const MAX_YAML_ALIASES = 100;

/**
 * Alias tokens (`*name`) per frontmatter, counted before parsing: yaml resolves each by walking the
 * document, so their number bounds that work. Higher than MAX_YAML_ALIASES because community
 * files write values such as `*bold*: text` that look like aliases to the lexer and that the
 * lenient frontmatter reader turns back into text (one per line, within the 1,000-line cap).
 */
export const MAX_YAML_ALIAS_TOKENS = 1_000;

/** The first top-level field nested deeper than `max` (a field's own container is level 1). */
export function tooDeepField(doc: Record<string, unknown>, max = MAX_INPUT_DEPTH): string | undefined {
  for (const [key, v] of Object.entries(doc)) if (valueDepth(v, max) > max) return key;
  return undefined;
}

/**
 * One pass of yaml's own lexer over the frontmatter (so quoted and block scalars are exactly what
 * the parser will see), stopping at the first of:
 * - `depth`: a coarse, linear upper bound of the nesting — the indentation levels open on a line,
 *   plus the block indicators on it, plus the open flow brackets — passes `maxDepth`. `- ` and
 *   `? ` count inside brackets too: there they are errors yaml recovers from by opening block
 *   collections, as deep as the line has them; `:` does not, a flow map's keys being on one line;
 * - `aliases`: more than `maxAliases` aliases (`*name`). yaml resolves each alias by walking the
 *   whole document, so 16,000 anchors each used once took 68 s; and its own alias limit only
 *   applies after that work.
 * Returns the problem and the 0-based offset of the token where it happened.
 */
export function scanYaml(
  text: string,
  maxDepth = MAX_YAML_STRUCTURE_DEPTH,
  maxAliases = MAX_YAML_ALIAS_TOKENS,
): { problem: 'depth' | 'aliases'; offset: number } | undefined {
  const indents: number[] = [];
  let flow = 0;
  let onLine = 0;
  let lineStart = true;
  let indent = 0;
  let offset = 0;
  let aliases = 0;
  for (const tok of new (yaml().Lexer)().lex(text)) {
    if (tok === '\x02' || tok === '\x18' || tok === '\x1f') continue; // the lexer's mode markers, not in the text
    const at = offset;
    offset += tok.length;
    if (tok === '\n' || tok === '\r\n' || tok === '') {
      lineStart = true;
      indent = 0;
      onLine = 0;
      continue;
    }
    if (tok[0] === '#') continue; // a comment opens nothing, wherever it is indented
    if (lineStart && (tok[0] === ' ' || tok[0] === '\t')) {
      indent = tok.length;
      continue;
    }
    if (tok[0] === '*' && ++aliases > maxAliases) return { problem: 'aliases', offset: at };
    if (lineStart) {
      // The first content of a line: the block levels still open are those indented less.
      if (flow === 0) {
        while (indents.length > 0 && indents[indents.length - 1]! >= indent) indents.pop();
        indents.push(indent);
      }
      lineStart = false;
    }
    if (tok === '[' || tok === '{') flow++;
    else if (tok === ']' || tok === '}') {
      if (flow > 0) flow--;
      continue;
    } else if (tok === '-' || tok === '?' || (tok === ':' && flow === 0)) onLine++;
    if (indents.length + onLine + flow > maxDepth) return { problem: 'depth', offset: at };
  }
  return undefined;
}

/**
 * How many values (containers and scalars) a parsed document expands to when every shared
 * reference (a YAML alias) is counted each time it is used, stopping once past `limit`.
 */
export function expandedSize(value: unknown, limit: number): number {
  let n = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (++n > limit) return n;
    if (v !== null && typeof v === 'object')
      for (const c of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) stack.push(c);
  }
  return n;
}
