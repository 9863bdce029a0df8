import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { configToJson, parseConfig, readConfig } from "../model/config.ts";

const FIXTURE = new URL("./fixtures/roberta-base.config.json", import.meta.url).pathname;
const SHARED = new URL("../../shared/data/tokenizer/roberta/", import.meta.url).pathname;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function fixture(): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(FIXTURE));
}

Deno.test("config: roberta-base config.json (committed copy) parses to its constants", async () => {
  const c = parseConfig(await fixture(), FIXTURE);
  strictEqual(c.modelType, "roberta");
  strictEqual(c.vocabSize, 50265);
  strictEqual(c.hiddenSize, 768);
  strictEqual(c.numLayers, 12);
  strictEqual(c.numHeads, 12);
  strictEqual(c.headSize, 64);
  strictEqual(c.intermediateSize, 3072);
  strictEqual(c.maxPositionEmbeddings, 514);
  strictEqual(c.typeVocabSize, 1);
  strictEqual(c.layerNormEps, 1e-5);
  strictEqual(c.hiddenDropout, 0.1);
  strictEqual(c.attentionDropout, 0.1);
  strictEqual(c.padTokenId, 1);
  strictEqual(c.hiddenAct, "gelu");
  strictEqual(c.initializerRange, 0.02);
  strictEqual(c.numLabels, undefined, "a masked-LM config has no labels");
  deepStrictEqual(c.raw.architectures, ["RobertaForMaskedLM"]);
});

Deno.test("config: readConfig reads dir/config.json; shared roberta-base and roberta-large configs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(FIXTURE, `${dir}/config.json`);
    strictEqual((await readConfig(dir)).hiddenSize, 768);
    await rejects(() => readConfig(`${dir}/missing`), /missing\/config\.json: cannot read the model config/);
    await Deno.writeTextFile(`${dir}/config.json`, "{oops");
    await rejects(() => readConfig(dir), /config\.json: not valid JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  if (!(await exists(`${SHARED}roberta-large-imdb-finetuned.config.json`))) {
    console.log(`SKIP: ${SHARED} is absent; only the committed fixture was tested`);
    return;
  }
  const base = JSON.parse(await Deno.readTextFile(`${SHARED}roberta-base.config.json`));
  deepStrictEqual(base, await fixture(), "fixture is a copy of the shared roberta-base config");
  const large = parseConfig(
    JSON.parse(await Deno.readTextFile(`${SHARED}roberta-large-imdb-finetuned.config.json`)),
    "roberta-large-imdb-finetuned.config.json",
  );
  strictEqual(large.hiddenSize, 1024);
  strictEqual(large.numLayers, 24);
  strictEqual(large.numHeads, 16);
  strictEqual(large.headSize, 64);
  strictEqual(large.intermediateSize, 4096);
  strictEqual(large.layerNormEps, 1e-5);
  strictEqual(large.numLabels, 2, "from id2label");
  strictEqual(large.classifierDropout, undefined, "classifier_dropout null means: use hidden dropout");
  const json = configToJson(large);
  deepStrictEqual(json.id2label, { 0: "NEGATIVE", 1: "POSITIVE" }, "label names kept");
  deepStrictEqual(json.label2id, { NEGATIVE: 0, POSITIVE: 1 });
});

Deno.test("config: defaults apply only to absent fields (layer_norm_eps 1e-12 is the HF class default)", async () => {
  const raw = await fixture();
  delete raw.layer_norm_eps;
  delete raw.type_vocab_size;
  delete raw.hidden_act;
  delete raw.pad_token_id;
  const c = parseConfig(raw, "x.json");
  strictEqual(c.layerNormEps, 1e-12);
  strictEqual(c.typeVocabSize, 2);
  strictEqual(c.hiddenAct, "gelu");
  strictEqual(c.padTokenId, 1);
  strictEqual(parseConfig({ ...raw, model_type: "bert" }, "x.json").padTokenId, 0);
});

Deno.test("config: invalid fields are rejected naming the file and field", async () => {
  const good = await fixture();
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ hidden_act: "gelu_new" }, /f\.json: field "hidden_act" must be "gelu" .* found "gelu_new"/],
    [{ hidden_act: "relu" }, /field "hidden_act"/],
    [{ num_attention_heads: 7 }, /field "num_attention_heads" must be a divisor of hidden_size 768, found 7/],
    [{ hidden_size: 0 }, /field "hidden_size" must be a positive integer, found 0/],
    [{ hidden_size: 76.8 }, /field "hidden_size" must be a positive integer/],
    [{ hidden_size: "768" }, /field "hidden_size" must be a positive integer, found "768"/],
    [{ vocab_size: undefined }, /field "vocab_size" must be a positive integer \(required\), found nothing/],
    [{ model_type: "gpt2" }, /field "model_type" must be "roberta" or "bert", found "gpt2"/],
    [{ layer_norm_eps: -1 }, /field "layer_norm_eps" must be a number in \(0, 1\)/],
    [{ hidden_dropout_prob: 1 }, /field "hidden_dropout_prob" must be a probability in \[0, 1\)/],
    [{ attention_probs_dropout_prob: "0.1" }, /field "attention_probs_dropout_prob"/],
    [{ pad_token_id: 50265 }, /field "pad_token_id" must be an integer in \[0, vocab_size 50265\)/],
    [
      { max_position_embeddings: 2 },
      /field "max_position_embeddings" must be greater than pad_token_id \+ 1 = 2/,
    ],
    [{ position_embedding_type: "relative_key" }, /field "position_embedding_type" must be "absolute"/],
    [{ num_labels: 3, id2label: { 0: "a", 1: "b" } }, /field "id2label" must be 3 entries/],
    [{ problem_type: "ranking" }, /field "problem_type" must be one of "regression"/],
    [{ initializer_range: 0 }, /field "initializer_range" must be a positive number/],
  ];
  for (const [patch, re] of cases) {
    const raw: Record<string, unknown> = { ...good, ...patch };
    for (const k of Object.keys(patch)) if (patch[k] === undefined) delete raw[k];
    throws(() => parseConfig(raw, "f.json"), re, JSON.stringify(patch));
  }
  throws(() => parseConfig([1], "f.json"), /f\.json: the config must be a JSON object/);
  throws(() => parseConfig(null, "f.json"), /must be a JSON object/);
});

Deno.test("config: configToJson writes HF names and round-trips through parseConfig", async () => {
  const c = parseConfig(await fixture(), "base.json");
  c.numLabels = 3;
  c.problemType = "single_label_classification";
  const json = configToJson(c);
  deepStrictEqual(json.architectures, ["RobertaForSequenceClassification"]);
  strictEqual(json.model_type, "roberta");
  strictEqual(json.hidden_size, 768);
  strictEqual(json.num_hidden_layers, 12);
  strictEqual(json.num_attention_heads, 12);
  strictEqual(json.intermediate_size, 3072);
  strictEqual(json.layer_norm_eps, 1e-5);
  strictEqual(json.bos_token_id, 0);
  strictEqual(json.eos_token_id, 2);
  deepStrictEqual(json.id2label, { 0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2" });
  deepStrictEqual(json.label2id, { LABEL_0: 0, LABEL_1: 1, LABEL_2: 2 });
  const back = parseConfig(JSON.parse(JSON.stringify(json)), "back.json");
  const strip = ({ raw: _raw, ...rest }: typeof c) => rest;
  deepStrictEqual(strip(back), strip(c));
  ok(!("num_labels" in json), "labels are given by id2label like HF writes them");
});
