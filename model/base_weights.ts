/**
 * The frozen base weights of a RoBERTa or BERT encoder on the device, read tensor by tensor from a Hugging Face
 * `model.safetensors` (F32, F16 or BF16; names with or without the `roberta.`/`bert.` prefix, old
 * `LayerNorm.gamma/beta` spelling accepted). BERT's pooler is part of the frozen base. A missing or mis-shaped tensor is an error naming it with the expected and found shape.
 * @module
 */
import type { Gpu } from "../kernels/device.ts";
import { EmbeddingTable } from "../kernels/embedding.ts";
import type { EncoderConfig } from "./config.ts";
import { headLayout } from "./names.ts";
import type { SafetensorsFile } from "./safetensors.ts";

/** The frozen weights of one encoder layer ([out, in] row-major as nn.Linear stores them). */
export interface LayerWeights {
  query: GPUBuffer;
  queryBias: GPUBuffer;
  key: GPUBuffer;
  keyBias: GPUBuffer;
  value: GPUBuffer;
  valueBias: GPUBuffer;
  attnOut: GPUBuffer;
  attnOutBias: GPUBuffer;
  ln1Weight: GPUBuffer;
  ln1Bias: GPUBuffer;
  inter: GPUBuffer;
  interBias: GPUBuffer;
  out: GPUBuffer;
  outBias: GPUBuffer;
  ln2Weight: GPUBuffer;
  ln2Bias: GPUBuffer;
}

/** The frozen base model on the device. */
export interface BaseWeights {
  word: EmbeddingTable;
  position: EmbeddingTable;
  tokenType: EmbeddingTable;
  embLnWeight: GPUBuffer;
  embLnBias: GPUBuffer;
  layers: LayerWeights[];
  /** BERT's pooler (dense `[H, H]` + bias, followed by tanh); absent for RoBERTa. */
  pooler?: { weight: GPUBuffer; bias: GPUBuffer };
  /** Bytes of device memory held. */
  bytes: number;
  /** Head tensors found in the checkpoint (a fine-tuned classifier), keyed by their Hugging Face names
   * (`classifier.dense.weight` etc. for RoBERTa, `classifier.weight`/`classifier.bias` for BERT). */
  head: Map<string, Float32Array>;
}

/** Canonical `roberta.`/`bert.`-prefixed name → the spellings a checkpoint may use for it. */
export function nameCandidates(canonical: string): string[] {
  const bare = canonical.replace(/^(roberta|bert)\./, "");
  const out = [canonical, bare];
  if (/LayerNorm\.weight$/.test(canonical)) {
    out.push(canonical.replace(/weight$/, "gamma"), bare.replace(/weight$/, "gamma"));
  }
  if (/LayerNorm\.bias$/.test(canonical)) {
    out.push(canonical.replace(/bias$/, "beta"), bare.replace(/bias$/, "beta"));
  }
  return out;
}

/** Reads one tensor by its canonical name, checking its shape. */
export async function readTensor(
  file: SafetensorsFile,
  canonical: string,
  shape: number[],
): Promise<Float32Array> {
  const name = nameCandidates(canonical).find((n) => file.tensors.has(n));
  if (!name) {
    throw new Error(
      `${file.path}: tensor ${canonical} (shape [${shape}]) is missing (also tried ${
        nameCandidates(canonical).slice(1).join(", ")
      })`,
    );
  }
  const info = file.tensors.get(name)!;
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${file.path}: tensor ${name} has shape [${info.shape}], expected [${shape}]`);
  }
  return await file.readF32(name);
}

/** Uploads the frozen base model, one tensor at a time (never two full host copies of the file). */
export async function loadBaseWeights(
  gpu: Gpu,
  file: SafetensorsFile,
  cfg: EncoderConfig,
): Promise<BaseWeights> {
  const H = cfg.hiddenSize, I = cfg.intermediateSize;
  let bytes = 0;
  // The queue keeps a staging copy of every write until a submission: flush every 64 MiB, so that loading peaks
  // near the weights plus 64 MiB instead of twice the weights.
  const flushEvery = 64 << 20;
  const up = async (name: string, shape: number[]) => {
    const data = await readTensor(file, name, shape);
    const b = gpu.upload(data, name);
    bytes += b.size;
    await gpu.flushWrites(flushEvery);
    return b;
  };
  const table = async (name: string, rows: number) => {
    const data = await readTensor(file, name, [rows, H]);
    bytes += data.byteLength;
    const t = EmbeddingTable.create(gpu, data, rows, H, name);
    await gpu.flushWrites(flushEvery);
    return t;
  };
  const f = cfg.modelType, e = `${f}.embeddings.`;
  const word = await table(`${e}word_embeddings.weight`, cfg.vocabSize);
  const position = await table(`${e}position_embeddings.weight`, cfg.maxPositionEmbeddings);
  const tokenType = await table(`${e}token_type_embeddings.weight`, cfg.typeVocabSize);
  const embLnWeight = await up(`${e}LayerNorm.weight`, [H]);
  const embLnBias = await up(`${e}LayerNorm.bias`, [H]);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `${f}.encoder.layer.${l}.`;
    layers.push({
      query: await up(`${p}attention.self.query.weight`, [H, H]),
      queryBias: await up(`${p}attention.self.query.bias`, [H]),
      key: await up(`${p}attention.self.key.weight`, [H, H]),
      keyBias: await up(`${p}attention.self.key.bias`, [H]),
      value: await up(`${p}attention.self.value.weight`, [H, H]),
      valueBias: await up(`${p}attention.self.value.bias`, [H]),
      attnOut: await up(`${p}attention.output.dense.weight`, [H, H]),
      attnOutBias: await up(`${p}attention.output.dense.bias`, [H]),
      ln1Weight: await up(`${p}attention.output.LayerNorm.weight`, [H]),
      ln1Bias: await up(`${p}attention.output.LayerNorm.bias`, [H]),
      inter: await up(`${p}intermediate.dense.weight`, [I, H]),
      interBias: await up(`${p}intermediate.dense.bias`, [I]),
      out: await up(`${p}output.dense.weight`, [H, I]),
      outBias: await up(`${p}output.dense.bias`, [H]),
      ln2Weight: await up(`${p}output.LayerNorm.weight`, [H]),
      ln2Bias: await up(`${p}output.LayerNorm.bias`, [H]),
    });
  }
  const pooler = f === "bert"
    ? { weight: await up("bert.pooler.dense.weight", [H, H]), bias: await up("bert.pooler.dense.bias", [H]) }
    : undefined;
  const head = new Map<string, Float32Array>();
  for (const t of headLayout(f, H, 1)) {
    if (file.tensors.has(t.hfName)) head.set(t.hfName, await file.readF32(t.hfName));
  }
  await gpu.flushWrites();
  return { word, position, tokenType, embLnWeight, embLnBias, layers, pooler, bytes, head };
}

/** The frozen weight buffer an adapted module path refers to (for merging FedEx residuals). */
export function moduleWeight(layers: LayerWeights[], path: string): GPUBuffer {
  const m = /^(?:roberta|bert)\.encoder\.layer\.(\d+)\.(.+)$/.exec(path);
  if (!m || !layers[+m[1]]) throw new Error(`unknown module path ${path}`);
  const L = layers[+m[1]];
  switch (m[2]) {
    case "attention.self.query":
      return L.query;
    case "attention.self.key":
      return L.key;
    case "attention.self.value":
      return L.value;
    case "attention.output.dense":
      return L.attnOut;
    case "intermediate.dense":
      return L.inter;
    case "output.dense":
      return L.out;
  }
  throw new Error(`unknown module path ${path}`);
}
