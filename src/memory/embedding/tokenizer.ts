/**
 * The BERT WordPiece tokenizer of all-MiniLM-L6-v2, read from the model's own `tokenizer.json`
 * (HuggingFace tokenizers format): BertNormalizer (clean text, spaces around CJK characters,
 * lowercase, strip accents), BertPreTokenizer (split on whitespace and punctuation), WordPiece
 * (greedy longest match, `##` continuation, `[UNK]` for words over 100 characters), then
 * `[CLS] … [SEP]`, truncated to the model's maximum length.
 */

interface TokenizerJson {
  normalizer?: {
    type?: string;
    lowercase?: boolean;
    strip_accents?: boolean | null;
    clean_text?: boolean;
    handle_chinese_chars?: boolean;
  };
  model: {
    type: string;
    vocab: Record<string, number>;
    unk_token: string;
    continuing_subword_prefix: string;
    max_input_chars_per_word: number;
  };
}

export interface Encoding {
  /** Token ids including [CLS] and [SEP]. */
  ids: number[];
  /** Whether the text was cut to fit the maximum length. */
  truncated: boolean;
}

const isControl = (cp: number, ch: string) => {
  if (ch === '\t' || ch === '\n' || ch === '\r') return false;
  return /^[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Cn}]$/u.test(ch) || cp === 0xfffd;
};
const isWhitespace = (ch: string) =>
  ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || /^[\p{Zs}\u2028\u2029]$/u.test(ch);
const isPunctuation = (cp: number, ch: string) =>
  (cp >= 33 && cp <= 47) ||
  (cp >= 58 && cp <= 64) ||
  (cp >= 91 && cp <= 96) ||
  (cp >= 123 && cp <= 126) ||
  /^\p{P}$/u.test(ch);
const isCjk = (cp: number) =>
  (cp >= 0x4e00 && cp <= 0x9fff) ||
  (cp >= 0x3400 && cp <= 0x4dbf) ||
  (cp >= 0x20000 && cp <= 0x2a6df) ||
  (cp >= 0x2a700 && cp <= 0x2b73f) ||
  (cp >= 0x2b740 && cp <= 0x2b81f) ||
  (cp >= 0x2b920 && cp <= 0x2ceaf) ||
  (cp >= 0xf900 && cp <= 0xfaff) ||
  (cp >= 0x2f800 && cp <= 0x2fa1f);

export class WordPieceTokenizer {
  private readonly vocab: Map<string, number>;
  private readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  private readonly prefix: string;
  private readonly maxWordChars: number;
  private readonly lowercase: boolean;
  private readonly stripAccents: boolean;
  /** Word → its piece ids, for the words seen most (bounded). */
  private readonly cache = new Map<string, number[]>();

  /** `maxLength` counts [CLS] and [SEP]. */
  constructor(
    tokenizerJson: string,
    readonly maxLength: number,
  ) {
    const t = JSON.parse(tokenizerJson) as TokenizerJson;
    if (t.model?.type !== 'WordPiece')
      throw new Error(`tokenizer.json: expected a WordPiece model, got ${t.model?.type}`);
    this.vocab = new Map(Object.entries(t.model.vocab));
    const id = (tok: string) => {
      const v = this.vocab.get(tok);
      if (v === undefined) throw new Error(`tokenizer.json: vocabulary has no ${tok}`);
      return v;
    };
    this.unkId = id(t.model.unk_token);
    this.clsId = id('[CLS]');
    this.sepId = id('[SEP]');
    this.padId = id('[PAD]');
    this.prefix = t.model.continuing_subword_prefix;
    this.maxWordChars = t.model.max_input_chars_per_word;
    this.lowercase = t.normalizer?.lowercase ?? true;
    // HF BertNormalizer: strip_accents null means "follow lowercase".
    this.stripAccents = t.normalizer?.strip_accents ?? this.lowercase;
  }

  get vocabSize(): number {
    return this.vocab.size;
  }

  /** BertNormalizer + BertPreTokenizer: the words of a text. */
  words(text: string): string[] {
    let s = '';
    for (const ch of text) {
      const cp = ch.codePointAt(0)!;
      if (cp === 0 || isControl(cp, ch)) continue;
      if (isWhitespace(ch)) s += ' ';
      else if (isCjk(cp)) s += ` ${ch} `;
      else s += ch;
    }
    if (this.stripAccents) s = s.normalize('NFD').replace(/\p{Mn}/gu, '');
    if (this.lowercase) s = s.toLowerCase();
    const out: string[] = [];
    for (const chunk of s.split(' ')) {
      if (chunk === '') continue;
      let word = '';
      for (const ch of chunk) {
        if (isPunctuation(ch.codePointAt(0)!, ch)) {
          if (word) out.push(word);
          out.push(ch);
          word = '';
        } else word += ch;
      }
      if (word) out.push(word);
    }
    return out;
  }

  private pieces(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const chars = [...word];
    let ids: number[] = [];
    if (chars.length > this.maxWordChars) ids = [this.unkId];
    else {
      let start = 0;
      while (start < chars.length) {
        let end = chars.length;
        let found: number | undefined;
        while (start < end) {
          const sub = (start > 0 ? this.prefix : '') + chars.slice(start, end).join('');
          found = this.vocab.get(sub);
          if (found !== undefined) break;
          end--;
        }
        if (found === undefined) {
          ids = [this.unkId];
          break;
        }
        ids.push(found);
        start = end;
      }
    }
    if (this.cache.size >= 50_000) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  /** Ids of one text: [CLS] pieces… [SEP], at most maxLength. */
  encode(text: string): Encoding {
    const budget = this.maxLength - 2;
    const ids = [this.clsId];
    let truncated = false;
    for (const word of this.words(text)) {
      const p = this.pieces(word);
      if (ids.length - 1 + p.length > budget) {
        ids.push(...p.slice(0, budget - (ids.length - 1)));
        truncated = true;
        break;
      }
      ids.push(...p);
    }
    ids.push(this.sepId);
    return { ids, truncated };
  }
}
