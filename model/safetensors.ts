/**
 * The safetensors file format (Hugging Face), read and written here without any dependency.
 *
 * Layout: an 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}?}`, then the byte buffer that the
 * offsets index (relative to its start). Tensors must tile the buffer exactly: contiguous, non-overlapping and in
 * order of their offsets, as the reference implementation requires.
 *
 * Reading keeps only the header in memory; each tensor is read from the file when asked for (seek + read), so a
 * 1.4 GB checkpoint is never held twice. F16 and BF16 are converted to f32 on load.
 *
 * @example
 * ```ts
 * const f = await SafetensorsFile.open("model/model.safetensors");
 * const w = await f.readF32("roberta.embeddings.word_embeddings.weight");
 * f.close();
 * await writeSafetensors("out.safetensors", new Map([["w", { shape: [2, 2], data: new Float32Array(4) }]]));
 * ```
 * @module
 */

/** Float dtypes this project reads (converted to f32) and writes. */
export type Dtype = "F32" | "F16" | "BF16";

/** The dtypes that `readF32` converts. */
export const READABLE_DTYPES: readonly Dtype[] = ["F32", "F16", "BF16"];

/**
 * Byte size of every dtype the safetensors format defines. Files holding other known dtypes (for example an
 * I64 `position_ids` buffer in older checkpoints) open fine; only reading such a tensor as f32 is refused.
 */
export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** Header entry of one tensor; `begin`/`end` are byte offsets relative to the start of the data buffer. */
export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** A tensor in memory, as read or to be written. */
export interface NamedTensor {
  shape: number[];
  data: Float32Array;
  /** Storage dtype when writing (default "F32"). */
  dtype?: Dtype;
}

/** Largest header accepted (the reference implementation's limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Number of elements of a shape (1 for a scalar `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A safetensors file opened for reading: header parsed and validated, tensors read on demand. */
export class SafetensorsFile {
  /** Path the file was opened from (used in every error message). */
  readonly path: string;
  /** Tensor entries by name, in file order (ascending offsets). */
  readonly tensors: Map<string, TensorInfo>;
  /** The `__metadata__` string map (empty when the file has none). */
  readonly metadata: Record<string, string>;
  /** Byte offset of the data buffer in the file (8 + header length). */
  readonly dataStart: number;
  #file: Deno.FsFile | null;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    path: string,
    file: Deno.FsFile,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string>,
    dataStart: number,
  ) {
    this.path = path;
    this.#file = file;
    this.tensors = tensors;
    this.metadata = metadata;
    this.dataStart = dataStart;
  }

  /**
   * Opens `path` and validates its header; throws an error naming the file (and tensor) on any defect.
   *
   * @example
   * ```ts
   * const f = await SafetensorsFile.open("dir/model.safetensors");
   * console.log([...f.tensors.keys()]);
   * ```
   */
  static async open(path: string): Promise<SafetensorsFile> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      if (size < 8) {
        throw new Error(
          `${path}: not a safetensors file: ${size} bytes, shorter than the 8-byte header length`,
        );
      }
      const lenBytes = await readExactly(file, 0, 8, path);
      const n64 = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (n64 > BigInt(size - 8)) {
        throw new Error(
          `${path}: header length ${n64} reaches beyond the end of the file (${size} bytes; at most ${
            size - 8
          } bytes of header possible)`,
        );
      }
      const n = Number(n64);
      if (n > MAX_HEADER_BYTES) {
        throw new Error(`${path}: header length ${n} exceeds ${MAX_HEADER_BYTES} bytes`);
      }
      const headerBytes = await readExactly(file, 8, n, path);
      const { tensors, metadata } = parseHeader(headerBytes, size - 8 - n, path);
      return new SafetensorsFile(path, file, tensors, metadata, 8 + n);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Header entry of `name`, or an error naming the file and listing a few of the names it has. */
  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) {
      const names = [...this.tensors.keys()];
      const shown = names.slice(0, 8).join(", ") + (names.length > 8 ? `, … (${names.length} in all)` : "");
      throw new Error(`${this.path}: no tensor named "${name}" (the file has: ${shown || "no tensors"})`);
    }
    return t;
  }

  /** Reads the raw bytes of tensor `name`. */
  readBytes(name: string): Promise<Uint8Array> {
    const t = this.info(name);
    // Serialise seek+read pairs so concurrent calls cannot interleave on the one file handle.
    const run = this.#queue.then(() => {
      if (!this.#file) throw new Error(`${this.path}: file is closed (reading tensor "${name}")`);
      return readExactly(this.#file, this.dataStart + t.begin, t.end - t.begin, this.path, name);
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Reads tensor `name` as f32, converting from F16 or BF16; other dtypes are refused with a clear error. */
  async readF32(name: string): Promise<Float32Array> {
    const t = this.info(name);
    if (!(READABLE_DTYPES as readonly string[]).includes(t.dtype)) {
      throw new Error(
        `${this.path}: tensor "${name}" has dtype ${t.dtype}; only ${
          READABLE_DTYPES.join(", ")
        } can be read as f32`,
      );
    }
    const bytes = await this.readBytes(name);
    // The bytes are a fresh, whole ArrayBuffer: an F32 tensor is viewed in place rather than copied.
    if (t.dtype === "F32" && LITTLE_ENDIAN) return new Float32Array(bytes.buffer, 0, bytes.byteLength / 4);
    return bytesToF32(bytes, t.dtype as Dtype);
  }

  /** Closes the file handle (idempotent). */
  close(): void {
    if (this.#file) {
      this.#file.close();
      this.#file = null;
    }
  }
}

/**
 * Validates a header and returns its tensors sorted by offset and its metadata.
 * `bufferBytes` is the size of the data buffer that follows the header.
 */
function parseHeader(
  headerBytes: Uint8Array,
  bufferBytes: number,
  path: string,
): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch (e) {
    throw new Error(`${path}: header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new Error(
      `${path}: header must be a JSON object, found ${Array.isArray(json) ? "an array" : json}`,
    );
  }
  const metadata: Record<string, string> = {};
  const list: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        throw new Error(`${path}: "__metadata__" must be an object of strings`);
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") {
          throw new Error(`${path}: "__metadata__"."${k}" must be a string, found ${JSON.stringify(v)}`);
        }
        metadata[k] = v;
      }
      continue;
    }
    list.push(parseEntry(name, entry, path));
  }
  list.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let expected = 0;
  for (const t of list) {
    if (t.begin !== expected) {
      throw new Error(
        `${path}: tensor "${t.name}" starts at byte ${t.begin} but the previous tensor ends at ${expected}; ` +
          `tensors must be contiguous and must not overlap`,
      );
    }
    if (t.end > bufferBytes) {
      throw new Error(
        `${path}: tensor "${t.name}" ends at byte ${t.end}, beyond the data buffer (${bufferBytes} bytes)`,
      );
    }
    expected = t.end;
  }
  if (expected !== bufferBytes) {
    throw new Error(
      `${path}: tensors cover ${expected} bytes but the data buffer has ${bufferBytes} (truncated or extra data)`,
    );
  }
  return { tensors: new Map(list.map((t) => [t.name, t])), metadata };
}

function parseEntry(name: string, entry: unknown, path: string): TensorInfo {
  const where = `${path}: tensor "${name}"`;
  if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
    throw new Error(`${where}: header entry must be an object {dtype, shape, data_offsets}`);
  }
  const e = entry as Record<string, unknown>;
  const dtype = e.dtype;
  if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
    throw new Error(
      `${where}: unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(", ")}; ` +
        `readable as f32: ${READABLE_DTYPES.join(", ")})`,
    );
  }
  const shape = e.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(
      `${where}: shape must be an array of non-negative integers, found ${JSON.stringify(shape)}`,
    );
  }
  const off = e.data_offsets;
  if (
    !Array.isArray(off) || off.length !== 2 || !off.every((x) => Number.isSafeInteger(x) && x >= 0) ||
    off[1] < off[0]
  ) {
    throw new Error(
      `${where}: data_offsets must be [begin, end] with 0 <= begin <= end, found ${JSON.stringify(off)}`,
    );
  }
  const bytes = shapeSize(shape) * DTYPE_BYTES[dtype];
  if (bytes !== off[1] - off[0]) {
    throw new Error(
      `${where}: shape [${shape}] of ${dtype} needs ${bytes} bytes but data_offsets [${off}] span ${
        off[1] - off[0]
      }`,
    );
  }
  return { name, dtype, shape: shape.slice(), begin: off[0], end: off[1] };
}

async function readExactly(
  file: Deno.FsFile,
  position: number,
  length: number,
  path: string,
  tensor?: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  await file.seek(position, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = await file.read(out.subarray(got));
    if (n === null) {
      throw new Error(
        `${path}: unexpected end of file reading ${tensor ? `tensor "${tensor}"` : "the header"} ` +
          `(${got} of ${length} bytes at offset ${position})`,
      );
    }
    got += n;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Half-precision conversions (bit exact)

let f16Table: Float32Array | null = null;

/** The f32 value of an IEEE binary16 bit pattern (subnormals, ±inf, NaN and -0 included). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** The f32 value of a bfloat16 bit pattern (the upper half of an f32). */
export function bf16BitsToF32(b: number): number {
  const u = new Uint32Array([(b & 0xffff) << 16]);
  return new Float32Array(u.buffer)[0];
}

const convBuf = new DataView(new ArrayBuffer(4));

/** binary16 bits of an f32 value, rounded to nearest even; overflow gives ±inf, NaN stays NaN (quiet). */
export function f32ToF16Bits(x: number): number {
  convBuf.setFloat32(0, x);
  const u = convBuf.getUint32(0);
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const frac = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (frac ? 0x200 | (frac >>> 13) : 0);
  const e = exp - 127 + 15; // biased f16 exponent
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal f16 (or zero): value = m * 2^-24 with m = round(|x| * 2^24).
    if (e < -10) return sign; // below half of the smallest subnormal: rounds to ±0
    const m = frac | 0x800000; // 24-bit significand with the implicit one
    const shift = 14 - e; // bits to drop so that the result is in units of 2^-24
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r; // r may carry into the exponent field: that is the correct smallest normal
  }
  let r = (e << 10) | (frac >>> 13);
  const rem = frac & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++; // may carry up to 0x7c00 = inf, which is correct
  return sign | r;
}

/** bfloat16 bits of an f32 value, rounded to nearest even; NaN stays NaN (quiet). */
export function f32ToBf16Bits(x: number): number {
  convBuf.setFloat32(0, x);
  const u = convBuf.getUint32(0);
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff)) return ((u >>> 16) | 0x40) & 0xffff;
  const lower = u & 0xffff;
  let r = u >>> 16;
  if (lower > 0x8000 || (lower === 0x8000 && (r & 1))) r++;
  return r & 0xffff;
}

/** Converts a tensor's raw little-endian bytes of dtype `dtype` to a fresh Float32Array. */
export function bytesToF32(bytes: Uint8Array, dtype: Dtype): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === "F32") {
    const n = bytes.byteLength / 4;
    if (LITTLE_ENDIAN) return new Float32Array(bytes.slice().buffer, 0, n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
    return out;
  }
  const n = bytes.byteLength / 2;
  const out = new Float32Array(n);
  if (dtype === "F16") {
    if (!f16Table) {
      f16Table = new Float32Array(65536);
      for (let h = 0; h < 65536; h++) f16Table[h] = f16BitsToF32(h);
    }
    const t = f16Table;
    for (let i = 0; i < n; i++) out[i] = t[dv.getUint16(2 * i, true)];
    return out;
  }
  if (dtype === "BF16") {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = dv.getUint16(2 * i, true) << 16;
    return out;
  }
  throw new Error(`unsupported dtype ${dtype}; supported: ${READABLE_DTYPES.join(", ")}`);
}

/** Encodes f32 values as little-endian bytes of `dtype` (rounding to nearest even for F16/BF16). */
export function f32ToBytes(data: Float32Array, dtype: Dtype): Uint8Array {
  if (dtype === "F32") {
    if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const out = new Uint8Array(data.length * 4);
    const dv = new DataView(out.buffer);
    for (let i = 0; i < data.length; i++) dv.setFloat32(4 * i, data[i], true);
    return out;
  }
  const out = new Uint8Array(data.length * 2);
  const dv = new DataView(out.buffer);
  const conv = dtype === "F16" ? f32ToF16Bits : dtype === "BF16" ? f32ToBf16Bits : null;
  if (!conv) throw new Error(`cannot write dtype ${dtype}; supported: ${READABLE_DTYPES.join(", ")}`);
  for (let i = 0; i < data.length; i++) dv.setUint16(2 * i, conv(data[i]), true);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Reading and writing whole files

/**
 * Reads every tensor of a file as f32. With `skipNonFloat`, tensors of other dtypes (e.g. an I64 `position_ids`)
 * are left out instead of being an error.
 */
export async function readSafetensors(
  path: string,
  opts: { skipNonFloat?: boolean } = {},
): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const f = await SafetensorsFile.open(path);
  try {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const t of f.tensors.values()) {
      if (opts.skipNonFloat && !(READABLE_DTYPES as readonly string[]).includes(t.dtype)) continue;
      out.set(t.name, { shape: t.shape.slice(), data: await f.readF32(t.name) });
    }
    return out;
  } finally {
    f.close();
  }
}

/** Shape and storage dtype of a tensor to be written by {@link writeSafetensorsStreaming}. */
export interface TensorSpec {
  name: string;
  shape: number[];
  dtype?: Dtype;
}

/**
 * Writes a safetensors file tensor by tensor: `produce(spec, i)` is called once per tensor, in ascending name
 * order, and its result is written before the next is asked for, so a large model never exists in memory at once.
 * The file is written to `${path}.tmp-<pid>` and renamed over `path` at the end (atomic on one filesystem).
 *
 * @example
 * ```ts
 * await writeSafetensorsStreaming("m.safetensors", [{ name: "w", shape: [3] }], () => new Float32Array(3));
 * ```
 */
export async function writeSafetensorsStreaming(
  path: string,
  specs: TensorSpec[],
  produce: (spec: TensorSpec, index: number) => Float32Array | Promise<Float32Array>,
  metadata?: Record<string, string>,
): Promise<void> {
  const sorted = specs.slice().sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new Error(`${path}: metadata "${k}" must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (let i = 0; i < sorted.length; i++) {
    const s = sorted[i];
    if (s.name === "__metadata__") throw new Error(`${path}: "__metadata__" cannot be a tensor name`);
    if (i > 0 && sorted[i - 1].name === s.name) throw new Error(`${path}: tensor "${s.name}" given twice`);
    const dtype = s.dtype ?? "F32";
    if (!(READABLE_DTYPES as readonly string[]).includes(dtype)) {
      throw new Error(
        `${path}: tensor "${s.name}": cannot write dtype ${dtype}; use ${READABLE_DTYPES.join(", ")}`,
      );
    }
    if (!s.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`${path}: tensor "${s.name}": bad shape [${s.shape}]`);
    }
    const bytes = shapeSize(s.shape) * DTYPE_BYTES[dtype];
    header[s.name] = { dtype, shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) {
    const padded = new Uint8Array(json.length + pad).fill(0x20);
    padded.set(json);
    json = padded;
  }
  const tmp = `${path}.tmp-${Deno.pid}`;
  const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  let ok = false;
  try {
    const len = new Uint8Array(8);
    new DataView(len.buffer).setBigUint64(0, BigInt(json.length), true);
    await writeAll(file, len);
    await writeAll(file, json);
    for (let i = 0; i < sorted.length; i++) {
      const s = sorted[i];
      const data = await produce(s, i);
      const n = shapeSize(s.shape);
      if (!(data instanceof Float32Array) || data.length !== n) {
        throw new Error(
          `${path}: tensor "${s.name}" of shape [${s.shape}] needs ${n} f32 values, got ${
            data instanceof Float32Array ? data.length : typeof data
          }`,
        );
      }
      await writeAll(file, f32ToBytes(data, s.dtype ?? "F32"));
    }
    ok = true;
  } finally {
    file.close();
    if (!ok) await Deno.remove(tmp).catch(() => {});
  }
  await Deno.rename(tmp, path);
}

/**
 * Writes tensors (all in memory) to a safetensors file, atomically, sorted by name, header padded with spaces to a
 * multiple of 8 bytes like the reference writer.
 *
 * @example
 * ```ts
 * await writeSafetensors("a.safetensors", new Map([["b", { shape: [2], data: Float32Array.of(1, 2), dtype: "F16" }]]),
 *   { format: "pt" });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, NamedTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const specs: TensorSpec[] = [...tensors].map(([name, t]) => ({ name, shape: t.shape, dtype: t.dtype }));
  await writeSafetensorsStreaming(path, specs, (s) => tensors.get(s.name)!.data, metadata);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await file.write(bytes.subarray(done));
}
