import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { loadTokenizer } from "../model/tokenizer.ts";
import {
  bertNormalize,
  bertPreTokenize,
  DEFAULT_BERT_NORMALIZER,
  isBertControl,
  isBertPunctuation,
  loadWordPieceTokenizer,
  parseVocabTxt,
  WordPieceTokenizer,
} from "../model/wordpiece.ts";

const TOKENIZER_DIR = new URL("../data/tokenizer/bert-base-uncased-minilm", import.meta.url).pathname;
const ROBERTA_DIR = new URL("../data/tokenizer/roberta", import.meta.url).pathname;
const FIXTURE = new URL("./fixtures/wordpiece_expected.jsonl", import.meta.url).pathname;
const LOWERCASE = new URL("./fixtures/wordpiece_lowercase.txt", import.meta.url).pathname;

interface Expected {
  a: string;
  b?: string;
  max_length?: number;
  ids: number[];
  type_ids: number[];
  decoded: string;
}

const cases: Expected[] = Deno.readTextFileSync(FIXTURE).split("\n").filter((l) => l.trim() !== "")
  .map((l) => JSON.parse(l));
const tok = await loadWordPieceTokenizer(TOKENIZER_DIR);

Deno.test("wordpiece: special ids, vocabulary size and normalizer settings come from the files", () => {
  strictEqual(tok.padId, 0);
  strictEqual(tok.unkId, 100);
  strictEqual(tok.clsId, 101);
  strictEqual(tok.sepId, 102);
  strictEqual(tok.maskId, 103);
  strictEqual(tok.bosId, tok.clsId);
  strictEqual(tok.eosId, tok.sepId);
  strictEqual(tok.vocabSize, 30522);
  deepStrictEqual(tok.normalizer, DEFAULT_BERT_NORMALIZER);
});

Deno.test("wordpiece: reproduces the Hugging Face ids, type ids and decoded text of every fixture line", () => {
  ok(cases.length >= 100, `fixture has ${cases.length} lines`);
  ok(cases.some((c) => c.max_length !== undefined && c.b !== undefined), "fixture covers pair truncation");
  ok(cases.some((c) => c.type_ids.includes(1)), "fixture covers type id 1");
  for (const [i, c] of cases.entries()) {
    const what = `fixture line ${i + 1}: ${JSON.stringify(c.a).slice(0, 60)}`;
    const opts = c.max_length === undefined ? {} : { maxLength: c.max_length };
    const got = tok.encodeTyped(c.a, c.b, opts);
    deepStrictEqual(got.ids, c.ids, what);
    deepStrictEqual(got.typeIds, c.type_ids, what);
    deepStrictEqual(tok.encode(c.a, c.b, opts), c.ids, what);
    strictEqual(tok.decode(got.ids), c.decoded, what);
  }
});

Deno.test("wordpiece: normalizer, pre-tokenizer and WordPiece pieces on hand-checked text", () => {
  strictEqual(bertNormalize("Café\u00a0DÉJÀ\tvu", DEFAULT_BERT_NORMALIZER), "cafe deja vu");
  strictEqual(bertNormalize("a\u0000b\u200bc\ufffdd", DEFAULT_BERT_NORMALIZER), "abcd");
  strictEqual(bertNormalize("中文", DEFAULT_BERT_NORMALIZER), " 中  文 ");
  strictEqual(
    bertNormalize("ΟΔΟΣ", DEFAULT_BERT_NORMALIZER),
    "οδοσ",
    "lower-cased per character: no final ς",
  );
  const keepAccents = { ...DEFAULT_BERT_NORMALIZER, stripAccents: false };
  strictEqual(bertNormalize("Café", keepAccents), "café");
  const cased = { ...DEFAULT_BERT_NORMALIZER, lowercase: false };
  strictEqual(bertNormalize("Café", cased), "Café", "strip_accents null follows lowercase");
  strictEqual(bertNormalize("Café", { ...cased, stripAccents: true }), "Cafe");
  deepStrictEqual(bertPreTokenize("don't  stop!!"), ["don", "'", "t", "stop", "!", "!"]);
  deepStrictEqual(bertPreTokenize("a€b+c"), ["a€b", "+", "c"], "€ is a symbol, + is ASCII punctuation");
  ok(isBertPunctuation(0x2e42) && !isBertPunctuation(0x2e5d), "tokenizers' older punctuation table");
  ok(isBertControl(0x200b) && !isBertControl(0x0890) && !isBertControl(0x0378), "tokenizers' control table");
  deepStrictEqual(tok.tokenizeToStrings("unaffable"), ["una", "##ffa", "##ble"]);
  deepStrictEqual(tok.tokenizeToStrings("x".repeat(101)), ["[UNK]"], "over max_input_chars_per_word");
  deepStrictEqual(tok.tokenizeToStrings("a[MASK]b"), ["a", "[MASK]", "b"], "special tokens in the raw text");
  deepStrictEqual(
    tok.tokenizeToStrings("[mask]"),
    ["[", "mask", "]"],
    "special tokens match case-sensitively",
  );
});

Deno.test("wordpiece: lower-casing matches every mapping of Hugging Face tokenizers", () => {
  const expected = new Map<number, string>();
  for (const line of Deno.readTextFileSync(LOWERCASE).split("\n")) {
    if (!line) continue;
    const [k, ...v] = line.split(":").map((h) => parseInt(h, 16));
    expected.set(k, String.fromCodePoint(...v));
  }
  ok(expected.size > 1400, `${expected.size} mappings`);
  const lowerOnly = { cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: true };
  let checked = 0;
  for (let cp = 0; cp < 0x110000; cp++) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue;
    const c = String.fromCodePoint(cp);
    const got = bertNormalize(c, lowerOnly);
    const want = expected.get(cp) ?? c;
    if (got !== want) {
      throw new Error(
        `U+${cp.toString(16)}: lower-cased to ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`,
      );
    }
    checked++;
  }
  ok(checked > 1_000_000);
});

Deno.test("wordpiece: truncation, pairs and batches", () => {
  const a = tok.tokenize("one two three four five six seven");
  const b = tok.tokenize("eight nine");
  strictEqual(a.length, 7);
  const r = tok.encodeTyped("one two three four five six seven", "eight nine", { maxLength: 9 });
  deepStrictEqual(r.ids, [101, ...a.slice(0, 4), 102, ...b, 102], "only the longer sequence is cut");
  deepStrictEqual(r.typeIds, [0, 0, 0, 0, 0, 0, 1, 1, 1]);
  deepStrictEqual(tok.encode("one two", undefined, { maxLength: 3 }), [101, a[0], 102]);
  throws(() => tok.encode("x", "y", { maxLength: 2 }), /maxLength must be an integer of at least 3/);
  throws(() => tok.encode("x", undefined, { maxLength: 1 }), /at least 2 \(the special tokens of a single/);
  const batch = tok.encodeBatch([{ a: "hello world" }, { a: "hi", b: "there" }], { maxLength: 16 });
  strictEqual(batch.seqLen, 5);
  deepStrictEqual(Array.from(batch.inputIds), [101, 7592, 2088, 102, 0, 101, 7632, 102, 2045, 102]);
  deepStrictEqual(Array.from(batch.typeIds), [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
  deepStrictEqual(batch.lengths, [4, 5]);
  throws(() => tok.encodeBatch([{ a: "hello world" }], { maxLength: 16, padTo: 3 }), /padTo 3 is shorter/);
});

Deno.test("wordpiece: decode round trip on simple text; unknown ids are errors", () => {
  for (const text of ["hello world", "the cat sat on the mat.", "unaffable tokenizers, please!"]) {
    strictEqual(tok.decode(tok.tokenize(text)), text);
  }
  strictEqual(tok.decode(tok.encode("Hi", "there")), "[CLS] hi [SEP] there [SEP]");
  throws(() => tok.decode([30522]), /id 30522 is not in the vocabulary \(size 30522\)/);
});

Deno.test("wordpiece: loadTokenizer picks WordPiece or BPE by the files in the folder", async () => {
  const bert = await loadTokenizer(TOKENIZER_DIR);
  ok(bert instanceof WordPieceTokenizer);
  deepStrictEqual(bert.encode("hello world"), [101, 7592, 2088, 102]);
  const roberta = await loadTokenizer(ROBERTA_DIR);
  ok(!(roberta instanceof WordPieceTokenizer));
  deepStrictEqual(roberta.encodeTyped("Hello world", "Hi"), {
    ids: roberta.encode("Hello world", "Hi"),
    typeIds: [0, 0, 0, 0, 0, 0, 0],
  });
  const dir = await Deno.makeTempDir();
  try {
    // A tiny tokenizer.json with model.type WordPiece, upper case kept, accents stripped explicitly.
    const vocab = { "[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, Cafe: 5, caf: 6, "##e": 7 };
    const tj = {
      normalizer: { type: "BertNormalizer", lowercase: false, strip_accents: true },
      pre_tokenizer: { type: "BertPreTokenizer" },
      model: { type: "WordPiece", vocab, unk_token: "[UNK]", max_input_chars_per_word: 4 },
      added_tokens: [{ id: 8, content: "<extra>" }],
    };
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(tj));
    await Deno.writeTextFile(`${dir}/vocab.txt`, "this file is not read when tokenizer.json is there\n");
    const t = await loadTokenizer(dir);
    ok(t instanceof WordPieceTokenizer);
    deepStrictEqual(t.tokenize("Café café cafe<extra>CAFES"), [5, 6, 7, 6, 7, 8, 1]);
    strictEqual(t.vocabSize, 9);
    // tokenizer_config.json overrides the normalizer (as BertTokenizerFast does).
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ do_lower_case: true }));
    deepStrictEqual((await loadTokenizer(dir)).tokenize("Café"), [6, 7]);

    await Deno.writeTextFile(
      `${dir}/tokenizer.json`,
      JSON.stringify({ ...tj, normalizer: { type: "Lowercase" } }),
    );
    await rejects(
      () => loadTokenizer(dir),
      /tokenizer\.json: field "normalizer\.type" must be "BertNormalizer"/,
    );
    await Deno.writeTextFile(
      `${dir}/tokenizer.json`,
      JSON.stringify({ ...tj, model: { ...tj.model, vocab: [] } }),
    );
    await rejects(() => loadTokenizer(dir), /tokenizer\.json: field "model\.vocab" must be an object/);
    await Deno.writeTextFile(
      `${dir}/tokenizer.json`,
      JSON.stringify({ ...tj, added_tokens: [{ id: 8, content: "<extra>", lstrip: true }] }),
    );
    await rejects(() => loadTokenizer(dir), /added_tokens\[0\] \("<extra>"\) sets "lstrip": true/);
    const { "[MASK]": _mask, ...noMask } = vocab;
    await Deno.writeTextFile(
      `${dir}/tokenizer.json`,
      JSON.stringify({ ...tj, model: { ...tj.model, vocab: noMask } }),
    );
    await rejects(() => loadTokenizer(dir), /tokenizer\.json: the vocabulary has no mask token "\[MASK\]"/);
    await Deno.writeTextFile(`${dir}/tokenizer.json`, "{not json");
    await rejects(() => loadTokenizer(dir), /tokenizer\.json: not valid JSON/);

    // vocab.txt alone (no tokenizer.json, no vocab.json/merges.txt) is WordPiece too.
    await Deno.remove(`${dir}/tokenizer.json`);
    await Deno.writeTextFile(`${dir}/vocab.txt`, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhi\n##ya\n");
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ do_lower_case: "yes" }));
    await rejects(
      () => loadTokenizer(dir),
      /tokenizer_config\.json: field "do_lower_case" must be true or false/,
    );
    await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify({ do_lower_case: true }));
    const small = await loadTokenizer(dir);
    ok(small instanceof WordPieceTokenizer);
    deepStrictEqual(small.encodeTyped("Hiya", "hi"), {
      ids: [2, 5, 6, 3, 5, 3],
      typeIds: [0, 0, 0, 0, 1, 1],
    });
    await Deno.writeTextFile(
      `${dir}/special_tokens_map.json`,
      JSON.stringify({ cls_token: { content: "<cls>" } }),
    );
    await rejects(() => loadTokenizer(dir), /vocab\.txt: the vocabulary has no cls token "<cls>"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("wordpiece: vocab.txt errors name the file and line", () => {
  deepStrictEqual([...parseVocabTxt("a\nb \r\n##c\n", "v.txt")], [["a", 0], ["b", 1], ["##c", 2]]);
  throws(() => parseVocabTxt("a\n\nb\n", "v.txt"), /v\.txt:2: empty token/);
  throws(() => parseVocabTxt("a\nb\na\n", "v.txt"), /v\.txt:3: token "a" repeats line 1/);
  throws(() => parseVocabTxt("", "v.txt"), /v\.txt: the vocabulary is empty/);
});
