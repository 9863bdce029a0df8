import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { readConfig } from "../model/config.ts";
import { presetConfig, PRESETS } from "../model/presets.ts";
import { SafetensorsFile } from "../model/safetensors.ts";
import { loadTokenizer } from "../model/tokenizer.ts";
import { initSpecs, initTensor } from "../model/weights_init.ts";
import { makeModel, parseMakeModelArgs } from "../tasks/make_model.ts";

const MAKE_MODEL = new URL("../tasks/make_model.ts", import.meta.url).pathname;
const TOKENIZER_DIR = new URL("../data/tokenizer/roberta/", import.meta.url).pathname;

/** The tensors a RoBERTa encoder must have, written out independently of model/names.ts. */
function expectedShapes(h: number, inter: number, layers: number, vocab: number, pos: number, types: number) {
  const m = new Map<string, number[]>([
    ["roberta.embeddings.word_embeddings.weight", [vocab, h]],
    ["roberta.embeddings.position_embeddings.weight", [pos, h]],
    ["roberta.embeddings.token_type_embeddings.weight", [types, h]],
    ["roberta.embeddings.LayerNorm.weight", [h]],
    ["roberta.embeddings.LayerNorm.bias", [h]],
  ]);
  for (let l = 0; l < layers; l++) {
    const p = `roberta.encoder.layer.${l}.`;
    for (const q of ["query", "key", "value"]) {
      m.set(`${p}attention.self.${q}.weight`, [h, h]);
      m.set(`${p}attention.self.${q}.bias`, [h]);
    }
    m.set(`${p}attention.output.dense.weight`, [h, h]);
    m.set(`${p}attention.output.dense.bias`, [h]);
    m.set(`${p}attention.output.LayerNorm.weight`, [h]);
    m.set(`${p}attention.output.LayerNorm.bias`, [h]);
    m.set(`${p}intermediate.dense.weight`, [inter, h]);
    m.set(`${p}intermediate.dense.bias`, [inter]);
    m.set(`${p}output.dense.weight`, [h, inter]);
    m.set(`${p}output.dense.bias`, [h]);
    m.set(`${p}output.LayerNorm.weight`, [h]);
    m.set(`${p}output.LayerNorm.bias`, [h]);
  }
  return m;
}

Deno.test("make-model: tiny model has the HF layout, N(0, 0.02²) weights, and is deterministic per seed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await makeModel({ preset: "tiny", out: `${dir}/a`, seed: 7, labels: 3 });
    deepStrictEqual(r.files.slice().sort(), ["config.json", "merges.txt", "model.safetensors", "vocab.json"]);
    deepStrictEqual([...Deno.readDirSync(`${dir}/a`)].map((e) => e.name).sort(), r.files.slice().sort());

    const cfg = await readConfig(`${dir}/a`);
    strictEqual(cfg.hiddenSize, 32);
    strictEqual(cfg.numLayers, 2);
    strictEqual(cfg.numHeads, 2);
    strictEqual(cfg.intermediateSize, 64);
    strictEqual(cfg.vocabSize, 50265);
    strictEqual(cfg.maxPositionEmbeddings, 514);
    strictEqual(cfg.layerNormEps, 1e-5);
    strictEqual(cfg.numLabels, 3);
    deepStrictEqual(cfg.raw.architectures, ["RobertaForSequenceClassification"]);

    const f = await SafetensorsFile.open(`${dir}/a/model.safetensors`);
    const want = expectedShapes(32, 64, 2, 50265, 514, 1);
    deepStrictEqual([...f.tensors.keys()].sort(), [...want.keys()].sort(), "exactly the encoder tensors");
    for (const [name, shape] of want) deepStrictEqual(f.tensors.get(name)!.shape, shape, name);
    for (const t of f.tensors.values()) strictEqual(t.dtype, "F32", t.name);
    strictEqual(f.metadata.format, "pt", "transformers requires format=pt");
    strictEqual(r.parameters, [...want.values()].reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0));

    deepStrictEqual(
      await f.readF32("roberta.encoder.layer.1.output.LayerNorm.weight"),
      new Float32Array(32).fill(1),
    );
    deepStrictEqual(await f.readF32("roberta.embeddings.LayerNorm.bias"), new Float32Array(32));
    for (
      const name of [
        "roberta.embeddings.word_embeddings.weight",
        "roberta.encoder.layer.0.attention.self.query.bias",
      ]
    ) {
      const w = await f.readF32(name);
      let s = 0, s2 = 0;
      for (const v of w) {
        ok(Number.isFinite(v), `${name} finite`);
        s += v;
        s2 += v * v;
      }
      const mean = s / w.length, std = Math.sqrt(s2 / w.length - mean * mean);
      const tol = w.length > 1000 ? 0.01 : 0.3; // sampling error of the std: ~1/sqrt(2n)
      ok(Math.abs(std / 0.02 - 1) < tol, `${name}: std ${std}`);
      ok(Math.abs(mean) < 4 * 0.02 / Math.sqrt(w.length), `${name}: mean ${mean}`);
    }
    // Tensors differ from each other (each has its own RNG stream).
    const q = await f.readF32("roberta.encoder.layer.0.attention.self.query.weight");
    const k = await f.readF32("roberta.encoder.layer.0.attention.self.key.weight");
    ok(q.some((v, i) => v !== k[i]), "query and key weights differ");
    f.close();

    // The same seed gives byte-identical files; the copied tokenizer loads and works.
    await makeModel({ preset: "tiny", out: `${dir}/b/`, seed: 7, labels: 3 });
    for (const name of r.files) {
      deepStrictEqual(await Deno.readFile(`${dir}/b/${name}`), await Deno.readFile(`${dir}/a/${name}`), name);
    }
    for (const name of ["vocab.json", "merges.txt"]) {
      deepStrictEqual(
        await Deno.readFile(`${dir}/a/${name}`),
        await Deno.readFile(`${TOKENIZER_DIR}${name}`),
        name,
      );
    }
    deepStrictEqual((await loadTokenizer(`${dir}/a`)).encode("Hello world"), [0, 31414, 232, 2]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("make-model: the seed changes the weights; tensors are drawn from their own index", () => {
  const cfg = presetConfig("tiny");
  const specs = initSpecs(cfg);
  const i = specs.findIndex((s) => s.name === "roberta.encoder.layer.0.attention.self.value.weight");
  ok(i >= 0);
  const a = initTensor(cfg, specs[i], i, 1);
  const b = initTensor(cfg, specs[i], i, 2);
  const c = initTensor(cfg, specs[i], i + 1, 1);
  deepStrictEqual(initTensor(cfg, specs[i], i, 1), a, "pure function of (seed, index)");
  ok(a.some((v, j) => v !== b[j]), "seed matters");
  ok(a.some((v, j) => v !== c[j]), "index matters");
  deepStrictEqual(specs.map((s) => s.name), specs.map((s) => s.name).slice().sort(), "specs are name-sorted");
});

Deno.test("make-model: presets carry roberta-base and roberta-large shapes", () => {
  const { base, large, tiny } = PRESETS;
  deepStrictEqual(
    [
      base.hiddenSize,
      base.numLayers,
      base.numHeads,
      base.intermediateSize,
      base.vocabSize,
      base.maxPositionEmbeddings,
    ],
    [768, 12, 12, 3072, 50265, 514],
  );
  deepStrictEqual(
    [large.hiddenSize, large.numLayers, large.numHeads, large.intermediateSize, large.headSize],
    [1024, 24, 16, 4096, 64],
  );
  strictEqual(tiny.headSize, 16);
  const total = (c: typeof base) => initSpecs(c).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  strictEqual(total(base), 124_055_040, "roberta-base encoder without pooler and LM head");
  strictEqual(total(large), 354_310_144, "roberta-large encoder without pooler and LM head");
  throws(() => presetConfig("huge"), /unknown model preset "huge"; expected one of tiny, base, large/);
  throws(() => presetConfig("tiny", 0), /number of labels must be an integer >= 1, got 0/);
});

Deno.test("make-model: command-line flags are parsed and bad ones are clear errors", async () => {
  deepStrictEqual(parseMakeModelArgs(["--preset", "tiny", "--out", "d", "--seed=5", "--labels", "3"]), {
    preset: "tiny",
    out: "d",
    seed: 5,
    labels: 3,
  });
  deepStrictEqual(parseMakeModelArgs(["--out=x", "--preset=large"]), {
    preset: "large",
    out: "x",
    seed: undefined,
    labels: undefined,
  });
  strictEqual(parseMakeModelArgs(["--help"]), null);
  strictEqual(parseMakeModelArgs(["--preset", "tiny", "-h"]), null);
  const bad: [string[], RegExp][] = [
    [["--preset", "tiny"], /--out DIR is required/],
    [["--out", "d"], /--preset is required \(one of tiny, base, large\)/],
    [["--preset", "huge", "--out", "d"], /--preset must be one of tiny, base, large, got "huge"/],
    [
      ["--preset", "tiny", "--out", "d", "--seed", "-1"],
      /--seed must be an integer in \[0, 4294967295\], got "-1"/,
    ],
    [["--preset", "tiny", "--out", "d", "--seed", "--labels", "2"], /flag --seed needs a value/],
    [
      ["--preset", "tiny", "--out", "d", "--seed", "1.5"],
      /--seed must be an integer in \[0, 4294967295\], got "1.5"/,
    ],
    [
      ["--preset", "tiny", "--out", "d", "--labels", "0"],
      /--labels must be an integer in \[1, 1000000\], got "0"/,
    ],
    [["--preset", "tiny", "--out", "d", "--sed", "1"], /unknown flag --sed/],
    [["--preset", "tiny", "--out"], /flag --out needs a value/],
    [["--preset", "tiny", "--preset", "base", "--out", "d"], /flag --preset is given twice/],
    [["tiny"], /unexpected argument "tiny"/],
  ];
  for (const [args, re] of bad) throws(() => parseMakeModelArgs(args), re, args.join(" "));
  await rejects(
    () => makeModel({ preset: "tiny", out: "/nonexistent-dir-x", seed: -1 }),
    /seed must be an integer/,
  );

  // The command itself: --help exits 0 with the usage text, a bad flag exits non-zero with the error.
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAKE_MODEL, ...args],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
  const help = await run(["--help"]);
  strictEqual(help.code, 0);
  ok(new TextDecoder().decode(help.stdout).includes("--preset NAME"));
  const wrong = await run(["--preset", "tiny", "--out", "/tmp/x", "--bogus"]);
  strictEqual(wrong.code, 2);
  ok(new TextDecoder().decode(wrong.stderr).includes("make-model: unknown flag --bogus"));
});
