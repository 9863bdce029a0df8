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
  /** Ids and token types (BERT: 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`); without it every type is 0. */
  encodeTyped?(a: string, b?: string, opts?: { maxLength?: number }): { ids: number[]; typeIds: number[] };
}

/** One example as token ids (and token types when any is nonzero). */
export interface EncodedExample {
  ids: Int32Array;
  /** Token types, same length as ids; absent means all 0. */
  typeIds?: Int32Array;
  label: number;
}

/** Encodes examples (truncation longest-first to `maxLength`). */
export function encodeExamples(
  tok: PairEncoder,
  examples: readonly TextExample[],
  maxLength: number,
): EncodedExample[] {
  return examples.map((e) => {
    if (!tok.encodeTyped) {
      return { ids: Int32Array.from(tok.encode(e.a, e.b, { maxLength })), label: e.label };
    }
    const { ids, typeIds } = tok.encodeTyped(e.a, e.b, { maxLength });
    const out: EncodedExample = { ids: Int32Array.from(ids), label: e.label };
    if (typeIds.some((t) => t !== 0)) out.typeIds = Int32Array.from(typeIds);
    return out;
  });
}

/** A padded batch ready for the model. */
export interface Batch {
  inputIds: Int32Array;
  /** Token types padded with 0 (absent when every example's are all 0). */
  typeIds?: Int32Array;
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
  const out: Batch = {
    inputIds,
    batch: indices.length,
    seqLen,
    labels: indices.map((i) => data[i].label),
    tokens,
  };
  if (indices.some((i) => data[i].typeIds)) {
    const typeIds = new Int32Array(indices.length * seqLen);
    indices.forEach((i, b) => {
      const t = data[i].typeIds;
      if (t) typeIds.set(t, b * seqLen);
    });
    out.typeIds = typeIds;
  }
  return out;
}
