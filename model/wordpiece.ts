/**
 * BERT WordPiece tokenizer, matching Hugging Face `BertTokenizerFast` (the Rust `tokenizers` library) token for
 * token: BertNormalizer, BertPreTokenizer, WordPiece, and the `[CLS] A [SEP] (B [SEP])` template with token type
 * ids 0 for `[CLS] A [SEP]` and 1 for `B [SEP]`.
 *
 * Steps, in `tokenizers`' order:
 * 1. Special tokens (`[CLS]`, `[SEP]`, `[PAD]`, `[UNK]`, `[MASK]`, and any other `added_tokens` of
 *    tokenizer.json) are found in the raw text, leftmost and longest first, and become their ids directly.
 * 2. The other stretches are normalized: clean text (delete NUL, U+FFFD and control/format/private-use
 *    characters, every whitespace character becomes a space), a space on each side of every CJK ideograph,
 *    strip accents (NFD, then delete non-spacing marks; done when `strip_accents` is true, or when it is
 *    null/absent and `lowercase` is true), lower-case (character by character, so a final Σ becomes σ).
 * 3. Pre-tokenized: split on whitespace (dropped) and on every punctuation character (kept as its own word).
 * 4. WordPiece: greedy longest match first, continuation pieces prefixed `##`; a word longer than
 *    `max_input_chars_per_word` code points, or one that cannot be covered completely, is one `[UNK]`.
 *
 * The character classes (control, punctuation, non-spacing mark) are the ones `tokenizers` 0.23.3 uses, measured
 * on every code point and written out below, because its Unicode tables are older than those of today's
 * JavaScript engines (e.g. U+2E5D is punctuation for JavaScript but not for `tokenizers`); lower-casing is
 * JavaScript's per-character `toLowerCase` plus the 28 mappings `tokenizers` knows and V8 does not yet.
 *
 * @example
 * ```ts
 * const tok = await loadWordPieceTokenizer("data/tokenizer/bert-base-uncased-minilm");
 * tok.encode("Hello world"); // [101, 7592, 2088, 102]
 * tok.encodeTyped("Hi", "there"); // { ids: [101, 7632, 102, 2045, 102], typeIds: [0, 0, 0, 1, 1] }
 * ```
 * @module
 */

import { type Tokenizer, truncatePair } from "./tokenizer.ts";

// ---------------------------------------------------------------------------------------------------------------
// Character classes of Hugging Face tokenizers (generated; do not edit by hand)

const CONTROL_RANGES =
  "0-8,b-c,e-1f,7f-9f,ad,600-605,61c,6dd,70f,180e,200b-200f,202a-202e,2060-2064,2066-206f,e000-f8ff,feff," +
  "fff9-fffb,fffd,110bd,1bca0-1bca3,1d173-1d17a,e0001,e0020-e007f,f0000-ffffd,100000-10fffd";
const PUNCTUATION_RANGES =
  "21-2f,3a-40,5b-60,7b-7e,a1,a7,ab,b6-b7,bb,bf,37e,387,55a-55f,589-58a,5be,5c0,5c3,5c6,5f3-5f4,609-60a," +
  "60c-60d,61b,61e-61f,66a-66d,6d4,700-70d,7f7-7f9,830-83e,85e,964-965,970,af0,df4,e4f,e5a-e5b,f04-f12," +
  "f14,f3a-f3d,f85,fd0-fd4,fd9-fda,104a-104f,10fb,1360-1368,1400,166d-166e,169b-169c,16eb-16ed,1735-1736," +
  "17d4-17d6,17d8-17da,1800-180a,1944-1945,1a1e-1a1f,1aa0-1aa6,1aa8-1aad,1b5a-1b60,1bfc-1bff,1c3b-1c3f," +
  "1c7e-1c7f,1cc0-1cc7,1cd3,2010-2027,2030-2043,2045-2051,2053-205e,207d-207e,208d-208e,2308-230b," +
  "2329-232a,2768-2775,27c5-27c6,27e6-27ef,2983-2998,29d8-29db,29fc-29fd,2cf9-2cfc,2cfe-2cff,2d70," +
  "2e00-2e2e,2e30-2e42,3001-3003,3008-3011,3014-301f,3030,303d,30a0,30fb,a4fe-a4ff,a60d-a60f,a673,a67e," +
  "a6f2-a6f7,a874-a877,a8ce-a8cf,a8f8-a8fa,a8fc,a92e-a92f,a95f,a9c1-a9cd,a9de-a9df,aa5c-aa5f,aade-aadf," +
  "aaf0-aaf1,abeb,fd3e-fd3f,fe10-fe19,fe30-fe52,fe54-fe61,fe63,fe68,fe6a-fe6b,ff01-ff03,ff05-ff0a," +
  "ff0c-ff0f,ff1a-ff1b,ff1f-ff20,ff3b-ff3d,ff3f,ff5b,ff5d,ff5f-ff65,10100-10102,1039f,103d0,1056f,10857," +
  "1091f,1093f,10a50-10a58,10a7f,10af0-10af6,10b39-10b3f,10b99-10b9c,11047-1104d,110bb-110bc,110be-110c1," +
  "11140-11143,11174-11175,111c5-111c9,111cd,111db,111dd-111df,11238-1123d,112a9,114c6,115c1-115d7," +
  "11641-11643,1173c-1173e,12470-12474,16a6e-16a6f,16af5,16b37-16b3b,16b44,1bc9f,1da87-1da8b";
const NONSPACING_MARK_RANGES =
  "300-36f,483-487,591-5bd,5bf,5c1-5c2,5c4-5c5,5c7,610-61a,64b-65f,670,6d6-6dc,6df-6e4,6e7-6e8,6ea-6ed," +
  "711,730-74a,7a6-7b0,7eb-7f3,816-819,81b-823,825-827,829-82d,859-85b,8e3-902,93a,93c,941-948,94d," +
  "951-957,962-963,981,9bc,9c1-9c4,9cd,9e2-9e3,a01-a02,a3c,a41-a42,a47-a48,a4b-a4d,a51,a70-a71,a75," +
  "a81-a82,abc,ac1-ac5,ac7-ac8,acd,ae2-ae3,b01,b3c,b3f,b41-b44,b4d,b56,b62-b63,b82,bc0,bcd,c00,c3e-c40," +
  "c46-c48,c4a-c4d,c55-c56,c62-c63,c81,cbc,cbf,cc6,ccc-ccd,ce2-ce3,d01,d41-d44,d4d,d62-d63,dca,dd2-dd4," +
  "dd6,e31,e34-e3a,e47-e4e,eb1,eb4-eb9,ebb-ebc,ec8-ecd,f18-f19,f35,f37,f39,f71-f7e,f80-f84,f86-f87," +
  "f8d-f97,f99-fbc,fc6,102d-1030,1032-1037,1039-103a,103d-103e,1058-1059,105e-1060,1071-1074,1082," +
  "1085-1086,108d,109d,135d-135f,1712-1714,1732-1734,1752-1753,1772-1773,17b4-17b5,17b7-17bd,17c6," +
  "17c9-17d3,17dd,180b-180d,18a9,1920-1922,1927-1928,1932,1939-193b,1a17-1a18,1a1b,1a56,1a58-1a5e,1a60," +
  "1a62,1a65-1a6c,1a73-1a7c,1a7f,1ab0-1abd,1b00-1b03,1b34,1b36-1b3a,1b3c,1b42,1b6b-1b73,1b80-1b81," +
  "1ba2-1ba5,1ba8-1ba9,1bab-1bad,1be6,1be8-1be9,1bed,1bef-1bf1,1c2c-1c33,1c36-1c37,1cd0-1cd2,1cd4-1ce0," +
  "1ce2-1ce8,1ced,1cf4,1cf8-1cf9,1dc0-1df5,1dfc-1dff,20d0-20dc,20e1,20e5-20f0,2cef-2cf1,2d7f,2de0-2dff," +
  "302a-302d,3099-309a,a66f,a674-a67d,a69e-a69f,a6f0-a6f1,a802,a806,a80b,a825-a826,a8c4,a8e0-a8f1," +
  "a926-a92d,a947-a951,a980-a982,a9b3,a9b6-a9b9,a9bc,a9e5,aa29-aa2e,aa31-aa32,aa35-aa36,aa43,aa4c,aa7c," +
  "aab0,aab2-aab4,aab7-aab8,aabe-aabf,aac1,aaec-aaed,aaf6,abe5,abe8,abed,fb1e,fe00-fe0f,fe20-fe2f,101fd," +
  "102e0,10376-1037a,10a01-10a03,10a05-10a06,10a0c-10a0f,10a38-10a3a,10a3f,10ae5-10ae6,11001,11038-11046," +
  "1107f-11081,110b3-110b6,110b9-110ba,11100-11102,11127-1112b,1112d-11134,11173,11180-11181,111b6-111be," +
  "111ca-111cc,1122f-11231,11234,11236-11237,112df,112e3-112ea,11300-11301,1133c,11340,11366-1136c," +
  "11370-11374,114b3-114b8,114ba,114bf-114c0,114c2-114c3,115b2-115b5,115bc-115bd,115bf-115c0,115dc-115dd," +
  "11633-1163a,1163d,1163f-11640,116ab,116ad,116b0-116b5,116b7,1171d-1171f,11722-11725,11727-1172b," +
  "16af0-16af4,16b30-16b36,16f8f-16f92,1bc9d-1bc9e,1d167-1d169,1d17b-1d182,1d185-1d18b,1d1aa-1d1ad," +
  "1d242-1d244,1da00-1da36,1da3b-1da6c,1da75,1da84,1da9b-1da9f,1daa1-1daaf,1e8d0-1e8d6,e0100-e01ef";

/** Lower-case mappings `tokenizers` applies that V8's `toLowerCase` (Unicode 15.1 tables) does not know. */
const LOWERCASE_EXTRA = new Map<number, number>([
  [0xa7ce, 0xa7cf],
  [0xa7d2, 0xa7d3],
  [0xa7d4, 0xa7d5],
  ...Array.from({ length: 0x16eb8 - 0x16ea0 + 1 }, (_, i): [number, number] => [0x16ea0 + i, 0x16ebb + i]),
]);

/** A sorted list of inclusive code point ranges, searched by bisection. */
class CodePointSet {
  #lo: Uint32Array;
  #hi: Uint32Array;

  constructor(spec: string) {
    const parts = spec.split(",");
    this.#lo = new Uint32Array(parts.length);
    this.#hi = new Uint32Array(parts.length);
    parts.forEach((p, i) => {
      const [a, b] = p.split("-");
      this.#lo[i] = parseInt(a, 16);
      this.#hi[i] = parseInt(b ?? a, 16);
    });
  }

  has(cp: number): boolean {
    let lo = 0, hi = this.#lo.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (cp < this.#lo[mid]) hi = mid - 1;
      else if (cp > this.#hi[mid]) lo = mid + 1;
      else return true;
    }
    return false;
  }
}

const CONTROL = new CodePointSet(CONTROL_RANGES);
const PUNCTUATION = new CodePointSet(PUNCTUATION_RANGES);
const NONSPACING_MARK = new CodePointSet(NONSPACING_MARK_RANGES);
/** Unicode White_Space (what Rust's `char::is_whitespace` tests). */
const WHITESPACE = new CodePointSet("9-d,20,85,a0,1680,2000-200a,2028-2029,202f,205f,3000");
/** The CJK ideograph blocks BERT pads with spaces (the original BERT `_is_chinese_char` ranges). */
const CJK = new CodePointSet(
  "3400-4dbf,4e00-9fff,f900-faff,20000-2a6df,2a700-2b73f,2b740-2b81f,2b920-2ceaf,2f800-2fa1f",
);

/** Whether `tokenizers`' clean_text deletes code point `cp` (NUL, U+FFFD, control, format, private use). */
export function isBertControl(cp: number): boolean {
  return CONTROL.has(cp);
}

/** Whether code point `cp` is a word of its own for the BertPreTokenizer (ASCII or Unicode punctuation). */
export function isBertPunctuation(cp: number): boolean {
  return PUNCTUATION.has(cp);
}

/** Whether code point `cp` is Unicode whitespace (White_Space). */
export function isBertWhitespace(cp: number): boolean {
  return WHITESPACE.has(cp);
}

// ---------------------------------------------------------------------------------------------------------------
// Normalizer and pre-tokenizer

/** Settings of the BertNormalizer (tokenizer.json `normalizer`, or tokenizer_config.json). */
export interface BertNormalizerOptions {
  /** Delete control characters and turn whitespace into spaces (default true). */
  cleanText: boolean;
  /** Surround CJK ideographs with spaces (default true). */
  handleChineseChars: boolean;
  /** Delete accents after NFD; null means "as lowercase" (default null). */
  stripAccents: boolean | null;
  /** Lower-case (default true). */
  lowercase: boolean;
}

/** The BertNormalizer defaults (also `bert-base-uncased`'s settings). */
export const DEFAULT_BERT_NORMALIZER: Readonly<BertNormalizerOptions> = {
  cleanText: true,
  handleChineseChars: true,
  stripAccents: null,
  lowercase: true,
};

/**
 * Applies the BertNormalizer to `text`.
 *
 * @example
 * ```ts
 * bertNormalize("Café\u00a0Déjà-vu 中文", DEFAULT_BERT_NORMALIZER); // "cafe deja-vu  中  文 "
 * ```
 */
export function bertNormalize(text: string, opts: BertNormalizerOptions): string {
  let s = text;
  if (opts.cleanText || opts.handleChineseChars) {
    let out = "";
    for (const ch of s) {
      const cp = ch.codePointAt(0)!;
      if (opts.cleanText && isBertControl(cp)) continue;
      if (opts.cleanText && isBertWhitespace(cp)) out += " ";
      else if (opts.handleChineseChars && CJK.has(cp)) out += ` ${ch} `;
      else out += ch;
    }
    s = out;
  }
  if (opts.stripAccents ?? opts.lowercase) {
    let out = "";
    for (const ch of s.normalize("NFD")) if (!NONSPACING_MARK.has(ch.codePointAt(0)!)) out += ch;
    s = out;
  }
  if (opts.lowercase) {
    let out = "";
    for (const ch of s) {
      const extra = LOWERCASE_EXTRA.get(ch.codePointAt(0)!);
      out += extra === undefined ? ch.toLowerCase() : String.fromCodePoint(extra);
    }
    s = out;
  }
  return s;
}

/**
 * Splits normalized text into words like the BertPreTokenizer: whitespace separates (and is dropped), every
 * punctuation character is a word of its own.
 *
 * @example
 * ```ts
 * bertPreTokenize("don't stop!"); // ["don", "'", "t", "stop", "!"]
 * ```
 */
export function bertPreTokenize(text: string): string[] {
  const words: string[] = [];
  let cur = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (isBertWhitespace(cp)) {
      if (cur) words.push(cur);
      cur = "";
    } else if (isBertPunctuation(cp)) {
      if (cur) words.push(cur);
      words.push(ch);
      cur = "";
    } else cur += ch;
  }
  if (cur) words.push(cur);
  return words;
}

// ---------------------------------------------------------------------------------------------------------------
// The tokenizer

/** Everything a WordPiece tokenizer is built from (as read from the tokenizer files). */
export interface WordPieceSettings {
  /** Token → id. */
  vocab: Map<string, number>;
  /** Normalizer settings. */
  normalizer: BertNormalizerOptions;
  /** The special-token strings (looked up in `vocab`). */
  special: { cls: string; sep: string; pad: string; unk: string; mask: string };
  /** Further strings matched in the raw text as whole tokens (tokenizer.json `added_tokens`), with their ids. */
  addedTokens?: Map<string, number>;
  /** Prefix of word-continuation pieces (default "##"). */
  continuingSubwordPrefix?: string;
  /** Longer words (in code points) become one `[UNK]` (default 100). */
  maxInputCharsPerWord?: number;
}

/** Escapes `s` for use inside a RegExp. */
function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/**
 * A BERT WordPiece tokenizer (see the module documentation). `bosId`/`eosId` are `[CLS]`/`[SEP]`, so code written
 * for the {@link Tokenizer} interface works unchanged.
 *
 * @example
 * ```ts
 * const tok = new WordPieceTokenizer({ vocab, normalizer: DEFAULT_BERT_NORMALIZER, special }, "vocab.txt");
 * tok.tokenize("unaffable"); // ids of ["una", "##ffa", "##ble"]
 * ```
 */
export class WordPieceTokenizer implements Tokenizer {
  /** Id of `[CLS]` (the interface's "begin" token). */
  bosId: number;
  /** Id of `[SEP]` (the interface's "end" token). */
  eosId: number;
  /** Id of `[CLS]`. */
  clsId: number;
  /** Id of `[SEP]`. */
  sepId: number;
  /** Id of `[PAD]` (0 for BERT). */
  padId: number;
  /** Id of `[UNK]`. */
  unkId: number;
  /** Id of `[MASK]`. */
  maskId: number;
  /** One more than the largest id. */
  vocabSize: number;
  /** The normalizer settings in use. */
  readonly normalizer: Readonly<BertNormalizerOptions>;
  #vocab: Map<string, number>;
  #idToToken: string[];
  #prefix: string;
  #maxChars: number;
  #added: Map<string, number>;
  #addedPattern: RegExp | null;
  #cache = new Map<string, number[]>();

  /** Builds the tokenizer; `source` (a file name) prefixes every error. */
  constructor(s: WordPieceSettings, source: string) {
    this.#vocab = s.vocab;
    this.normalizer = { ...s.normalizer };
    this.#prefix = s.continuingSubwordPrefix ?? "##";
    this.#maxChars = s.maxInputCharsPerWord ?? 100;
    if (!Number.isSafeInteger(this.#maxChars) || this.#maxChars < 1) {
      throw new Error(
        `${source}: max_input_chars_per_word must be a positive integer, got ${this.#maxChars}`,
      );
    }
    const special = (role: string, t: string) => {
      const id = s.vocab.get(t) ?? s.addedTokens?.get(t);
      if (id === undefined) {
        throw new Error(`${source}: the vocabulary has no ${role} token ${JSON.stringify(t)}`);
      }
      return id;
    };
    this.clsId = this.bosId = special("cls", s.special.cls);
    this.sepId = this.eosId = special("sep", s.special.sep);
    this.padId = special("pad", s.special.pad);
    this.unkId = special("unk", s.special.unk);
    this.maskId = special("mask", s.special.mask);
    this.#added = new Map(s.addedTokens ?? []);
    for (const t of Object.values(s.special)) this.#added.set(t, special("special", t));
    const alternatives = [...this.#added.keys()].filter((t) => t !== "").sort((a, b) => b.length - a.length);
    this.#addedPattern = alternatives.length
      ? new RegExp(alternatives.map(escapeRegExp).join("|"), "g")
      : null;
    let max = -1;
    for (const id of this.#vocab.values()) max = Math.max(max, id);
    for (const id of this.#added.values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    this.#idToToken = new Array(this.vocabSize);
    for (const [t, id] of this.#vocab) this.#idToToken[id] = t;
    for (const [t, id] of this.#added) this.#idToToken[id] ??= t;
  }

  /** Token ids of `text`, without `[CLS]`/`[SEP]` (special-token strings in the text become their ids). */
  tokenize(text: string): number[] {
    const out: number[] = [];
    let from = 0;
    if (this.#addedPattern) {
      for (const m of text.matchAll(this.#addedPattern)) {
        this.#tokenizePlain(text.slice(from, m.index), out);
        out.push(this.#added.get(m[0])!);
        from = m.index + m[0].length;
      }
    }
    this.#tokenizePlain(text.slice(from), out);
    return out;
  }

  /** The WordPiece tokens (strings) of `text`, for inspection. */
  tokenizeToStrings(text: string): string[] {
    return this.tokenize(text).map((id) => this.#idToToken[id]);
  }

  #tokenizePlain(text: string, out: number[]): void {
    if (text === "") return;
    for (const word of bertPreTokenize(bertNormalize(text, this.normalizer))) {
      let ids = this.#cache.get(word);
      if (!ids) {
        ids = this.#wordPiece(word);
        if (this.#cache.size >= 100_000) this.#cache.clear();
        this.#cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** Greedy longest-match-first WordPiece of one word. */
  #wordPiece(word: string): number[] {
    const chars = Array.from(word);
    if (chars.length > this.#maxChars) return [this.unkId];
    const ids: number[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length, found = -1;
      while (start < end) {
        const piece = (start > 0 ? this.#prefix : "") + chars.slice(start, end).join("");
        const id = this.#vocab.get(piece);
        if (id !== undefined) {
          found = id;
          break;
        }
        end--;
      }
      if (found < 0) return [this.unkId];
      ids.push(found);
      start = end;
    }
    return ids;
  }

  #truncated(
    a: string,
    b: string | undefined,
    maxLength: number | undefined,
  ): [number[], number[] | undefined] {
    const ia = this.tokenize(a);
    const ib = b === undefined ? undefined : this.tokenize(b);
    if (maxLength === undefined) return [ia, ib];
    return truncatePair(ia, ib, maxLength, ib === undefined ? 2 : 3);
  }

  /**
   * `[CLS] A [SEP]` or `[CLS] A [SEP] B [SEP]`. With `maxLength`, tokens are cut from the end of the longer of A
   * and B until the total fits (Hugging Face "longest_first"); no truncation otherwise.
   */
  encode(a: string, b?: string, opts: { maxLength?: number } = {}): number[] {
    return this.encodeTyped(a, b, opts).ids;
  }

  /** Like {@link encode}, with the token type ids: 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`. */
  encodeTyped(
    a: string,
    b?: string,
    opts: { maxLength?: number } = {},
  ): { ids: number[]; typeIds: number[] } {
    const [ia, ib] = this.#truncated(a, b, opts.maxLength);
    const ids = [this.clsId, ...ia, this.sepId];
    const typeIds = new Array<number>(ids.length).fill(0);
    if (ib !== undefined) {
      ids.push(...ib, this.sepId);
      for (let i = 0; i <= ib.length; i++) typeIds.push(1);
    }
    return { ids, typeIds };
  }

  /**
   * Encodes a batch into row-major `[batch, seqLen]` ids padded with `padId`, and the token type ids (padding
   * gets type 0, as in Hugging Face); `seqLen` is the longest row or the given `padTo`.
   */
  encodeBatch(
    pairs: { a: string; b?: string }[],
    opts: { maxLength: number; padTo?: "longest" | number },
  ): { inputIds: Int32Array; typeIds: Int32Array; batch: number; seqLen: number; lengths: number[] } {
    const rows = pairs.map((p) => this.encodeTyped(p.a, p.b, { maxLength: opts.maxLength }));
    const lengths = rows.map((r) => r.ids.length);
    const longest = lengths.reduce((m, n) => Math.max(m, n), 0);
    const padTo = opts.padTo ?? "longest";
    let seqLen = longest;
    if (padTo !== "longest") {
      if (!Number.isSafeInteger(padTo) || padTo < longest) {
        const i = lengths.indexOf(longest);
        throw new Error(
          `tokenizer: padTo ${padTo} is shorter than pair ${i} (${longest} tokens after truncation to ${opts.maxLength})`,
        );
      }
      seqLen = padTo;
    }
    const inputIds = new Int32Array(rows.length * seqLen).fill(this.padId);
    const typeIds = new Int32Array(rows.length * seqLen);
    rows.forEach((r, i) => {
      inputIds.set(r.ids, i * seqLen);
      typeIds.set(r.typeIds, i * seqLen);
    });
    return { inputIds, typeIds, batch: rows.length, seqLen, lengths };
  }

  /**
   * Text of a list of ids like Hugging Face's WordPiece decoder (special tokens kept): tokens joined by spaces,
   * `##` pieces glued to the previous token, and its clean-up (" ." → ".", " n't" → "n't", " do not" → " don't",
   * …). Lower-casing and accent stripping are not undone.
   */
  decode(ids: number[]): string {
    let out = "";
    ids.forEach((id, i) => {
      const t = this.#idToToken[id];
      if (t === undefined) {
        throw new Error(`tokenizer: id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      }
      let piece = t;
      if (i > 0) piece = t.startsWith(this.#prefix) ? t.slice(this.#prefix.length) : ` ${t}`;
      out += cleanUpDecoded(piece);
    });
    return out;
  }
}

/** The WordPiece decoder's clean-up of one token (applied after its leading space is added). */
function cleanUpDecoded(s: string): string {
  return s.replaceAll(" .", ".").replaceAll(" ?", "?").replaceAll(" !", "!").replaceAll(" ,", ",")
    .replaceAll(" ' ", "'").replaceAll(" n't", "n't").replaceAll(" 'm", "'m").replaceAll(" do not", " don't")
    .replaceAll(" 's", "'s").replaceAll(" 've", "'ve").replaceAll(" 're", "'re");
}

// ---------------------------------------------------------------------------------------------------------------
// Reading the tokenizer files

/**
 * Parses a `vocab.txt` (one token per line, id = line number from 0; trailing whitespace of a line is not part of
 * the token, as in `tokenizers`). Empty or duplicate tokens are errors naming the line.
 */
export function parseVocabTxt(text: string, file: string): Map<string, number> {
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const vocab = new Map<string, number>();
  lines.forEach((raw, i) => {
    const t = raw.replace(/[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/u, "");
    if (t === "") throw new Error(`${file}:${i + 1}: empty token (every line must hold one token)`);
    const prev = vocab.get(t);
    if (prev !== undefined) {
      throw new Error(`${file}:${i + 1}: token ${JSON.stringify(t)} repeats line ${prev + 1}`);
    }
    vocab.set(t, i);
  });
  if (vocab.size === 0) throw new Error(`${file}: the vocabulary is empty`);
  return vocab;
}

async function readOptionalText(file: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`${file}: cannot read (${(e as Error).message})`);
  }
}

function parseJsonObject(text: string, file: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new Error(`${file}: must be a JSON object`);
  }
  return v as Record<string, unknown>;
}

type Fields = Record<string, unknown>;

function optBool(o: Fields, field: string, file: string, path = field): boolean | undefined {
  const v = o[field];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean") {
    throw new Error(`${file}: field "${path}" must be true or false, found ${JSON.stringify(v)}`);
  }
  return v;
}

function optBoolOrNull(o: Fields, field: string, file: string, path = field): boolean | null | undefined {
  return o[field] === null ? null : optBool(o, field, file, path);
}

/** A special token given as a string or as `{"content": "..."}` (both occur in Hugging Face files). */
function optTokenString(o: Fields, field: string, file: string): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string" && v !== "") return v;
  if (typeof v === "object" && typeof (v as Fields).content === "string" && (v as Fields).content !== "") {
    return (v as Fields).content as string;
  }
  throw new Error(
    `${file}: field "${field}" must be a token string or {"content": string}, found ${JSON.stringify(v)}`,
  );
}

/** Reads the WordPiece settings of tokenizer.json's `model`, `normalizer` and `added_tokens`. */
function readTokenizerJson(tj: Fields, file: string): Omit<WordPieceSettings, "special"> & { unk?: string } {
  const model = tj.model as Fields;
  if (typeof model !== "object" || model === null) {
    throw new Error(`${file}: field "model" must be an object`);
  }
  if (model.type !== "WordPiece") {
    throw new Error(`${file}: field "model.type" must be "WordPiece", found ${JSON.stringify(model.type)}`);
  }
  const rawVocab = model.vocab;
  if (typeof rawVocab !== "object" || rawVocab === null || Array.isArray(rawVocab)) {
    throw new Error(`${file}: field "model.vocab" must be an object {token: id}`);
  }
  const vocab = new Map<string, number>();
  const seen = new Set<number>();
  for (const [t, id] of Object.entries(rawVocab as Fields)) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) {
      throw new Error(
        `${file}: model.vocab[${JSON.stringify(t)}] must be an integer id >= 0, found ${JSON.stringify(id)}`,
      );
    }
    if (seen.has(id as number)) throw new Error(`${file}: model.vocab gives id ${id} to more than one token`);
    seen.add(id as number);
    vocab.set(t, id as number);
  }
  const prefix = model.continuing_subword_prefix ?? "##";
  if (typeof prefix !== "string" || prefix === "") {
    throw new Error(`${file}: field "model.continuing_subword_prefix" must be a non-empty string`);
  }
  const maxChars = model.max_input_chars_per_word ?? 100;
  if (!Number.isSafeInteger(maxChars) || (maxChars as number) < 1) {
    throw new Error(
      `${file}: field "model.max_input_chars_per_word" must be a positive integer, found ${maxChars}`,
    );
  }
  const unk = model.unk_token;
  if (unk !== undefined && typeof unk !== "string") {
    throw new Error(`${file}: field "model.unk_token" must be a string`);
  }

  const normalizer = { ...DEFAULT_BERT_NORMALIZER };
  const n = tj.normalizer as Fields | null | undefined;
  if (n !== undefined && n !== null) {
    if (typeof n !== "object" || n.type !== "BertNormalizer") {
      throw new Error(
        `${file}: field "normalizer.type" must be "BertNormalizer" (the only normalizer implemented), found ${
          JSON.stringify(typeof n === "object" ? n.type : n)
        }`,
      );
    }
    normalizer.cleanText = optBool(n, "clean_text", file, "normalizer.clean_text") ?? true;
    normalizer.handleChineseChars =
      optBool(n, "handle_chinese_chars", file, "normalizer.handle_chinese_chars") ?? true;
    normalizer.stripAccents = optBoolOrNull(n, "strip_accents", file, "normalizer.strip_accents") ?? null;
    normalizer.lowercase = optBool(n, "lowercase", file, "normalizer.lowercase") ?? true;
  }
  const pre = tj.pre_tokenizer as Fields | null | undefined;
  if (pre !== undefined && pre !== null && pre.type !== "BertPreTokenizer") {
    throw new Error(
      `${file}: field "pre_tokenizer.type" must be "BertPreTokenizer" (the only one implemented), found ${
        JSON.stringify(pre.type)
      }`,
    );
  }

  const addedTokens = new Map<string, number>();
  if (tj.added_tokens !== undefined) {
    if (!Array.isArray(tj.added_tokens)) throw new Error(`${file}: field "added_tokens" must be an array`);
    (tj.added_tokens as Fields[]).forEach((t, i) => {
      if (
        typeof t?.content !== "string" || t.content === "" || !Number.isSafeInteger(t.id) ||
        (t.id as number) < 0
      ) {
        throw new Error(
          `${file}: added_tokens[${i}] must have a non-empty "content" and an integer "id" >= 0`,
        );
      }
      for (const flag of ["lstrip", "rstrip", "single_word", "normalized"]) {
        if (t[flag] === true) {
          throw new Error(
            `${file}: added_tokens[${i}] (${
              JSON.stringify(t.content)
            }) sets "${flag}": true, which is not implemented`,
          );
        }
      }
      addedTokens.set(t.content as string, t.id as number);
    });
  }
  return {
    vocab,
    normalizer,
    addedTokens,
    continuingSubwordPrefix: prefix,
    maxInputCharsPerWord: maxChars as number,
    unk: unk as string | undefined,
  };
}

/**
 * Loads the WordPiece tokenizer in `dir`: `tokenizer.json` when it is there (its `model.type` must be
 * "WordPiece"), else `vocab.txt`. `tokenizer_config.json`, when present, overrides the normalizer with the fields
 * it gives (`do_lower_case`, `strip_accents`, `tokenize_chinese_chars`), as `BertTokenizerFast` does, and names
 * the special tokens (`cls_token`, …; `special_tokens_map.json` too), default `[CLS]` `[SEP]` `[PAD]` `[UNK]`
 * `[MASK]`.
 *
 * @example
 * ```ts
 * const tok = await loadWordPieceTokenizer("models/minilm");
 * tok.encodeTyped("hello", "world"); // { ids: [101, 7592, 102, 2088, 102], typeIds: [0, 0, 0, 1, 1] }
 * ```
 */
export async function loadWordPieceTokenizer(dir: string): Promise<WordPieceTokenizer> {
  const d = dir.replace(/\/+$/, "");
  const tjFile = `${d}/tokenizer.json`, vocabFile = `${d}/vocab.txt`;
  const cfgFile = `${d}/tokenizer_config.json`, mapFile = `${d}/special_tokens_map.json`;
  const [tjText, cfgText, mapText] = await Promise.all([
    readOptionalText(tjFile),
    readOptionalText(cfgFile),
    readOptionalText(mapFile),
  ]);
  let settings: Omit<WordPieceSettings, "special"> & { unk?: string };
  let source: string;
  if (tjText !== null) {
    settings = readTokenizerJson(parseJsonObject(tjText, tjFile), tjFile);
    source = tjFile;
  } else {
    const vocabText = await readOptionalText(vocabFile);
    if (vocabText === null) {
      throw new Error(`${d}: no WordPiece tokenizer found: expected vocab.txt or tokenizer.json`);
    }
    settings = { vocab: parseVocabTxt(vocabText, vocabFile), normalizer: { ...DEFAULT_BERT_NORMALIZER } };
    source = vocabFile;
  }
  const special = { cls: "[CLS]", sep: "[SEP]", pad: "[PAD]", unk: settings.unk ?? "[UNK]", mask: "[MASK]" };
  const names = [["cls", "cls_token"], ["sep", "sep_token"], ["pad", "pad_token"], ["unk", "unk_token"], [
    "mask",
    "mask_token",
  ]] as const;
  for (const [text, file] of [[mapText, mapFile], [cfgText, cfgFile]] as const) {
    if (text === null) continue;
    const o = parseJsonObject(text, file);
    for (const [role, field] of names) special[role] = optTokenString(o, field, file) ?? special[role];
  }
  if (cfgText !== null) {
    const cfg = parseJsonObject(cfgText, cfgFile);
    const n = settings.normalizer;
    n.lowercase = optBool(cfg, "do_lower_case", cfgFile) ?? n.lowercase;
    const strip = optBoolOrNull(cfg, "strip_accents", cfgFile);
    if (strip !== undefined) n.stripAccents = strip;
    n.handleChineseChars = optBool(cfg, "tokenize_chinese_chars", cfgFile) ?? n.handleChineseChars;
  }
  return new WordPieceTokenizer({ ...settings, special }, source);
}
