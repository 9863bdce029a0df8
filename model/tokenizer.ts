/**
 * Byte-level BPE tokenizer (the GPT-2 scheme that RoBERTa uses), reading `vocab.json` + `merges.txt` (or a
 * `tokenizer.json` with `model.vocab`/`model.merges`).
 *
 * Steps: split the text with the GPT-2 pre-tokenisation pattern, map each piece's UTF-8 bytes to printable
 * characters (GPT-2's byte→unicode table, so a space becomes `Ġ`), apply the merges by rank until none applies,
 * look the symbols up in the vocabulary. Like Hugging Face's RoBERTa tokenizer with its default
 * `add_prefix_space=false`, the first word gets no leading `Ġ`. Special-token strings inside the text (e.g. a
 * literal `<mask>`) are tokenised as ordinary text.
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer("data/tokenizer/roberta");
 * tok.encode("Hello world"); // [0, 31414, 232, 2]
 * const { inputIds, batch, seqLen } = tok.encodeBatch([{ a: "Hi", b: "there" }], { maxLength: 128 });
 * ```
 * @module
 */

import { loadWordPieceTokenizer } from "./wordpiece.ts";

/** A loaded tokenizer: byte-level BPE (RoBERTa) or WordPiece (BERT, see `wordpiece.ts`). */
export interface Tokenizer {
  /** Id of `<s>` (BPE) or `[CLS]` (WordPiece). */
  bosId: number;
  /** Id of `</s>` (BPE) or `[SEP]` (WordPiece). */
  eosId: number;
  /** Id of `<pad>` (BPE) or `[PAD]` (WordPiece). */
  padId: number;
  /** Id of `<unk>` (BPE) or `[UNK]` (WordPiece). */
  unkId: number;
  /** One more than the largest id. */
  vocabSize: number;
  /** Token ids of `text`, without special tokens. */
  tokenize(text: string): number[];
  /**
   * `<s> A </s>` or `<s> A </s></s> B </s>`. With `maxLength`, tokens are cut from the end of the longer of A and B
   * until the total fits (Hugging Face "longest_first": the shorter one, A on ties, keeps at most half the token
   * budget, rounded down); no truncation otherwise.
   */
  encode(a: string, b?: string, opts?: { maxLength?: number }): number[];
  /**
   * {@link encode} with the token type id of every token: all 0 for BPE (RoBERTa does not use token types); for
   * WordPiece 0 for `[CLS] A [SEP]` and 1 for `B [SEP]`.
   */
  encodeTyped(a: string, b?: string, opts?: { maxLength?: number }): { ids: number[]; typeIds: number[] };
  /**
   * Encodes a batch (each truncated to `maxLength`) into one row-major `[batch, seqLen]` Int32Array padded with
   * `padId`; `seqLen` is the longest row (`padTo: "longest"`, the default) or the given number.
   */
  encodeBatch(
    pairs: { a: string; b?: string }[],
    opts: { maxLength: number; padTo?: "longest" | number },
  ): { inputIds: Int32Array; batch: number; seqLen: number; lengths: number[] };
  /** Text of a list of ids (special tokens included as their strings); bytes that are not UTF-8 become U+FFFD. */
  decode(ids: number[]): string;
}

/**
 * The GPT-2 pre-tokenisation pattern. `\s` is spelled out as the Unicode White_Space set, which is what the
 * reference implementations' regex engines use; JavaScript's `\s` differs (it includes U+FEFF and omits U+0085).
 */
const WS = "\\t-\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";
const PRETOKENIZE = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  "gu",
);

/** GPT-2's byte→character table: printable Latin-1 bytes map to themselves, the others to U+0100 upwards. */
export function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  const direct = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(direct(b) ? b : 256 + n++);
  return table;
}

/**
 * Truncates a sentence or pair (token ids without specials) so that, with `specials` special tokens added, it
 * fits `maxLength`, the way Hugging Face's "longest_first" does (checked against tokenizers 0.23 for all lengths
 * up to 13): the shorter sequence (A when they are equally long) keeps at most half the budget, rounded down; the
 * other gets the rest. Shared by the BPE and WordPiece tokenizers.
 *
 * @example
 * ```ts
 * truncatePair([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [11, 12, 13], 12, 4); // [[1, 2, 3, 4, 5], [11, 12, 13]]
 * ```
 */
export function truncatePair(
  ia: number[],
  ib: number[] | undefined,
  maxLength: number,
  specials: number,
): [number[], number[] | undefined] {
  if (!Number.isSafeInteger(maxLength) || maxLength < specials) {
    throw new Error(
      `tokenizer: maxLength must be an integer of at least ${specials} (the special tokens of a ${
        ib === undefined ? "single sequence" : "pair"
      }), got ${maxLength}`,
    );
  }
  const budget = maxLength - specials;
  if (ib === undefined) return [ia.length > budget ? ia.slice(0, budget) : ia, undefined];
  let na = ia.length, nb = ib.length;
  if (na + nb > budget) {
    if (na > nb) {
      nb = Math.min(nb, Math.floor(budget / 2));
      na = Math.min(na, budget - nb);
    } else {
      na = Math.min(na, Math.floor(budget / 2));
      nb = Math.min(nb, budget - na);
    }
  }
  return [ia.slice(0, na), ib.slice(0, nb)];
}

/** Splits `text` into GPT-2 pre-tokens (exported for tests). */
export function preTokenize(text: string): string[] {
  return text.match(PRETOKENIZE) ?? [];
}

const CACHE_LIMIT = 100_000;

class BpeTokenizer implements Tokenizer {
  bosId: number;
  eosId: number;
  padId: number;
  unkId: number;
  vocabSize: number;
  #vocab: Map<string, number>;
  #idToToken: string[];
  #ranks: Map<string, number>;
  #byteChars = bytesToUnicode();
  #charBytes = new Map<string, number>(this.#byteChars.map((c, b) => [c, b]));
  #cache = new Map<string, number[]>();
  #encoder = new TextEncoder();

  constructor(vocab: Map<string, number>, merges: [string, string][], source: string) {
    this.#vocab = vocab;
    this.#ranks = new Map(merges.map(([a, b], i) => [`${a} ${b}`, i]));
    const special = (s: string) => {
      const id = vocab.get(s);
      if (id === undefined) throw new Error(`${source}: the vocabulary has no special token "${s}"`);
      return id;
    };
    this.bosId = special("<s>");
    this.eosId = special("</s>");
    this.padId = special("<pad>");
    this.unkId = special("<unk>");
    let max = -1;
    for (const id of vocab.values()) max = Math.max(max, id);
    this.vocabSize = max + 1;
    this.#idToToken = new Array(this.vocabSize);
    for (const [t, id] of vocab) this.#idToToken[id] = t;
  }

  tokenize(text: string): number[] {
    const out: number[] = [];
    for (const piece of preTokenize(text)) {
      let ids = this.#cache.get(piece);
      if (!ids) {
        ids = this.#bpe(piece);
        if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
        this.#cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
    return out;
  }

  /** BPE of one pre-token: repeatedly merge every occurrence of the lowest-ranked adjacent pair. */
  #bpe(piece: string): number[] {
    let word = Array.from(this.#encoder.encode(piece), (b) => this.#byteChars[b]);
    while (word.length > 1) {
      let best = Infinity;
      let a = "", b = "";
      for (let i = 0; i + 1 < word.length; i++) {
        const r = this.#ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < best) {
          best = r;
          a = word[i];
          b = word[i + 1];
        }
      }
      if (best === Infinity) break;
      const next: string[] = [];
      for (let i = 0; i < word.length;) {
        if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
          next.push(a + b);
          i += 2;
        } else {
          next.push(word[i]);
          i++;
        }
      }
      word = next;
    }
    return word.map((s) => this.#vocab.get(s) ?? this.unkId);
  }

  encode(a: string, b?: string, opts: { maxLength?: number } = {}): number[] {
    let ia = this.tokenize(a);
    let ib = b === undefined ? undefined : this.tokenize(b);
    if (opts.maxLength !== undefined) {
      [ia, ib] = truncatePair(ia, ib, opts.maxLength, ib === undefined ? 2 : 4);
    }
    return ib === undefined
      ? [this.bosId, ...ia, this.eosId]
      : [this.bosId, ...ia, this.eosId, this.eosId, ...ib, this.eosId];
  }

  encodeTyped(
    a: string,
    b?: string,
    opts: { maxLength?: number } = {},
  ): { ids: number[]; typeIds: number[] } {
    const ids = this.encode(a, b, opts);
    return { ids, typeIds: new Array<number>(ids.length).fill(0) };
  }

  encodeBatch(
    pairs: { a: string; b?: string }[],
    opts: { maxLength: number; padTo?: "longest" | number },
  ): { inputIds: Int32Array; batch: number; seqLen: number; lengths: number[] } {
    const rows = pairs.map((p) => this.encode(p.a, p.b, { maxLength: opts.maxLength }));
    const lengths = rows.map((r) => r.length);
    const longest = lengths.reduce((m, n) => Math.max(m, n), 0);
    const padTo = opts.padTo ?? "longest";
    let seqLen: number;
    if (padTo === "longest") seqLen = longest;
    else {
      if (!Number.isSafeInteger(padTo) || padTo < longest) {
        const i = lengths.indexOf(longest);
        throw new Error(
          `tokenizer: padTo ${padTo} is shorter than pair ${i} (${longest} tokens after truncation to ${opts.maxLength})`,
        );
      }
      seqLen = padTo;
    }
    const inputIds = new Int32Array(rows.length * seqLen).fill(this.padId);
    rows.forEach((r, i) => inputIds.set(r, i * seqLen));
    return { inputIds, batch: rows.length, seqLen, lengths };
  }

  decode(ids: number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      const t = this.#idToToken[id];
      if (t === undefined) {
        throw new Error(`tokenizer: id ${id} is not in the vocabulary (size ${this.vocabSize})`);
      }
      for (const ch of t) {
        const b = this.#charBytes.get(ch);
        if (b === undefined) bytes.push(...this.#encoder.encode(ch));
        else bytes.push(b);
      }
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  }
}

function parseVocab(json: unknown, file: string): Map<string, number> {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Error(`${file}: the vocabulary must be a JSON object {token: id}`);
  }
  const vocab = new Map<string, number>();
  const seen = new Set<number>();
  for (const [t, id] of Object.entries(json as Record<string, unknown>)) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) {
      throw new Error(
        `${file}: token ${JSON.stringify(t)} has id ${JSON.stringify(id)}; ids are integers >= 0`,
      );
    }
    if (seen.has(id as number)) throw new Error(`${file}: id ${id} is given to more than one token`);
    seen.add(id as number);
    vocab.set(t, id as number);
  }
  return vocab;
}

function parseMergeLine(line: string, file: string, lineNo: number): [string, string] {
  const parts = line.split(" ");
  if (parts.length !== 2 || !parts[0] || !parts[1]) {
    throw new Error(
      `${file}:${lineNo}: a merge must be two symbols separated by one space, found ${JSON.stringify(line)}`,
    );
  }
  return [parts[0], parts[1]];
}

async function readText(file: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new Error(`${file}: cannot read (${(e as Error).message})`);
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

/**
 * Loads the tokenizer in `dir`: byte-level BPE from `vocab.json` + `merges.txt` when both exist; else WordPiece
 * ({@link loadWordPieceTokenizer}) when `tokenizer.json` has `model.type` "WordPiece", or when there is no
 * tokenizer.json but a `vocab.txt`; else BPE from `tokenizer.json` (`model.type` "BPE", `model.vocab`,
 * `model.merges` as "a b" strings or [a, b] pairs, plus `added_tokens`).
 *
 * @example
 * ```ts
 * const tok = await loadTokenizer("data/tokenizer/roberta"); // BPE
 * const bert = await loadTokenizer("data/tokenizer/bert-base-uncased-minilm"); // WordPiece
 * ```
 */
export async function loadTokenizer(dir: string): Promise<Tokenizer> {
  const d = dir.replace(/\/+$/, "");
  const vocabFile = `${d}/vocab.json`, mergesFile = `${d}/merges.txt`, tjFile = `${d}/tokenizer.json`;
  const [vocabText, mergesText] = await Promise.all([readText(vocabFile), readText(mergesFile)]);
  if (vocabText !== null && mergesText !== null) {
    const vocab = parseVocab(parseJson(vocabText, vocabFile), vocabFile);
    const merges: [string, string][] = [];
    mergesText.split("\n").forEach((raw, i) => {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (line === "" || (i === 0 && line.startsWith("#version"))) return;
      merges.push(parseMergeLine(line, mergesFile, i + 1));
    });
    return new BpeTokenizer(vocab, merges, vocabFile);
  }
  const tjText = await readText(tjFile);
  if (tjText === null) {
    if (vocabText === null && mergesText === null && await readText(`${d}/vocab.txt`) !== null) {
      return await loadWordPieceTokenizer(d);
    }
    throw new Error(
      `${d}: no tokenizer found: expected vocab.json and merges.txt${
        vocabText !== null || mergesText !== null
          ? ` (only ${vocabText !== null ? "vocab.json" : "merges.txt"} is there)`
          : ""
      }, or tokenizer.json, or vocab.txt (WordPiece)`,
    );
  }
  const tj = parseJson(tjText, tjFile) as Record<string, unknown>;
  const model = (tj && typeof tj === "object" ? tj.model : undefined) as Record<string, unknown> | undefined;
  if (!model || typeof model !== "object") throw new Error(`${tjFile}: field "model" must be an object`);
  if (model.type === "WordPiece") return await loadWordPieceTokenizer(d);
  if (model.type !== undefined && model.type !== "BPE") {
    throw new Error(
      `${tjFile}: field "model.type" must be "BPE" or "WordPiece", found ${JSON.stringify(model.type)}`,
    );
  }
  const vocab = parseVocab(model.vocab, `${tjFile} (model.vocab)`);
  if (!Array.isArray(model.merges)) throw new Error(`${tjFile}: field "model.merges" must be an array`);
  const merges = (model.merges as unknown[]).map((m, i): [string, string] => {
    if (typeof m === "string") return parseMergeLine(m, `${tjFile} model.merges`, i);
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string") {
      return [m[0], m[1]];
    }
    throw new Error(`${tjFile}: model.merges[${i}] must be "a b" or ["a", "b"], found ${JSON.stringify(m)}`);
  });
  if (Array.isArray(tj.added_tokens)) {
    for (const t of tj.added_tokens as { id?: unknown; content?: unknown }[]) {
      if (typeof t?.content === "string" && Number.isSafeInteger(t.id) && !vocab.has(t.content)) {
        vocab.set(t.content, t.id as number);
      }
    }
  }
  return new BpeTokenizer(vocab, merges, tjFile);
}
