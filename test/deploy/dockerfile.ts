/**
 * A small Dockerfile reader for the offline checks of deploy/docker/Dockerfile: instruction lines
 * (continuations joined, comments and parser directives dropped), grouped into build stages.
 * Not a full implementation of the Dockerfile grammar: enough to check what the image declares.
 */

export interface Instruction {
  /** Upper-cased: FROM, RUN, COPY, ENV, ... */
  name: string;
  /** The rest of the line, continuations joined with a space. */
  args: string;
  /** 1-based line where the instruction starts. */
  line: number;
}

export interface Stage {
  /** The `AS name` of its FROM, if any. */
  name: string | undefined;
  base: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    if (/^\s*(#|$)/.test(raw)) continue;
    const start = i + 1;
    let joined = raw.replace(/\s+$/, '');
    while (joined.endsWith('\\') && i + 1 < lines.length) {
      joined = joined.slice(0, -1);
      i++;
      const next = lines[i]!;
      if (/^\s*#/.test(next)) continue; // comment lines inside a continuation are ignored
      joined += ' ' + next.trim();
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(joined);
    if (!m) throw new Error(`line ${start}: not an instruction: ${raw}`);
    out.push({ name: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
  }
  return out;
}

export function stages(instructions: Instruction[]): Stage[] {
  const out: Stage[] = [];
  for (const ins of instructions) {
    if (ins.name === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`line ${ins.line}: cannot read FROM ${ins.args}`);
      out.push({ base: m[1]!, name: m[2], instructions: [] });
    } else {
      if (out.length === 0) throw new Error(`line ${ins.line}: ${ins.name} before the first FROM`);
      out.at(-1)!.instructions.push(ins);
    }
  }
  return out;
}

/** `ENV A=1 B="two"` (the key=value form) as a record. */
export function envPairs(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S+)/g))
    out[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
  return out;
}

/** An exec-form argument list (`["node", "x.js"]`). */
export function execForm(args: string): string[] {
  const v = JSON.parse(args) as unknown;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new Error(`not an exec-form array: ${args}`);
  return v as string[];
}
