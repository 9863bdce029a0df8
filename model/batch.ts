/**
 * Text examples turned into token ids once, and padded batches cut from them (padded to the longest
 * sequence of the batch, which is what Hugging Face's dynamic padding does).
 * @module
 */
/** A text example: one sentence or a pair, with its label (class id or score). */
export interface TextExample {
  a: string;
  b?: string;
  label: number;
}

/** Anything that encodes a sentence or pair into ids with specials (the model's tokenizer). */
export interface PairEncoder {
  padId: number;
  encode(a: string, b?: string, opts?: { maxLength?: number }): number[];
}

/** One example as token ids. */
export interface EncodedExample {
  ids: Int32Array;
  label: number;
}

/** Encodes examples (truncation longest-first to `maxLength`). */
export function encodeExamples(
  tok: PairEncoder,
  examples: readonly TextExample[],
  maxLength: number,
): EncodedExample[] {
  return examples.map((e) => ({ ids: Int32Array.from(tok.encode(e.a, e.b, { maxLength })), label: e.label }));
}

/** A padded batch ready for the model. */
export interface Batch {
  inputIds: Int32Array;
  batch: number;
  seqLen: number;
  labels: number[];
  tokens: number;
}

/** Pads the examples at `indices` to the longest of them. */
export function makeBatch(data: readonly EncodedExample[], indices: readonly number[], padId: number): Batch {
  let seqLen = 1, tokens = 0;
  for (const i of indices) {
    seqLen = Math.max(seqLen, data[i].ids.length);
    tokens += data[i].ids.length;
  }
  const inputIds = new Int32Array(indices.length * seqLen).fill(padId);
  indices.forEach((i, b) => inputIds.set(data[i].ids, b * seqLen));
  return { inputIds, batch: indices.length, seqLen, labels: indices.map((i) => data[i].label), tokens };
}
