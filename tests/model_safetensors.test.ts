import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import {
  bf16BitsToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  readSafetensors,
  SafetensorsFile,
  writeSafetensors,
  writeSafetensorsStreaming,
} from "../model/safetensors.ts";
import { randomF32 } from "./util.ts";

/** Builds a file by hand: u64 header length (or `lenOverride`), header text, data bytes. */
async function craft(dir: string, name: string, header: string, data: Uint8Array, lenOverride?: bigint) {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  const path = `${dir}/${name}.safetensors`;
  await Deno.writeFile(path, out);
  return path;
}

function u16le(values: number[]): Uint8Array {
  const b = new Uint8Array(values.length * 2);
  const dv = new DataView(b.buffer);
  values.forEach((v, i) => dv.setUint16(2 * i, v, true));
  return b;
}

/** Same-value check that distinguishes -0 from 0 and accepts NaN only where NaN is expected. */
function sameValues(got: ArrayLike<number>, want: number[], what: string) {
  strictEqual(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    ok(Object.is(got[i], want[i]), `${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

Deno.test("safetensors: F16 and BF16 bit patterns decode to their IEEE values", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Known binary16 patterns: 1, -2, max normal, smallest subnormal, largest subnormal, smallest normal, +inf,
    // -inf, -0, +0, 1/3 rounded, a NaN.
    const f16Bits = [
      0x3c00,
      0xc000,
      0x7bff,
      0x0001,
      0x03ff,
      0x0400,
      0x7c00,
      0xfc00,
      0x8000,
      0x0000,
      0x3555,
      0x7e00,
    ];
    const f16Want = [
      1,
      -2,
      65504,
      2 ** -24,
      1023 * 2 ** -24,
      2 ** -14,
      Infinity,
      -Infinity,
      -0,
      0,
      0.333251953125,
      NaN,
    ];
    // Known bfloat16 patterns: 1, -2, +inf, -inf, -0, smallest subnormal, largest finite, pi rounded, NaN.
    const bfBits = [0x3f80, 0xc000, 0x7f80, 0xff80, 0x8000, 0x0001, 0x7f7f, 0x4049, 0x7fc0];
    const bfWant = [1, -2, Infinity, -Infinity, -0, 2 ** -133, 3.3895313892515355e38, 3.140625, NaN];
    const header = JSON.stringify({
      h: { dtype: "F16", shape: [f16Bits.length], data_offsets: [0, 2 * f16Bits.length] },
      b: {
        dtype: "BF16",
        shape: [bfBits.length],
        data_offsets: [2 * f16Bits.length, 2 * (f16Bits.length + bfBits.length)],
      },
    });
    const data = new Uint8Array([...u16le(f16Bits), ...u16le(bfBits)]);
    const path = await craft(dir, "halves", header, data);
    const f = await SafetensorsFile.open(path);
    sameValues(await f.readF32("h"), f16Want, "F16");
    sameValues(await f.readF32("b"), bfWant, "BF16");
    f.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors: half conversions agree with Float16Array and round to nearest even", () => {
  // Every binary16 pattern decodes like the platform's Float16Array (an independent implementation).
  const all = new Uint16Array(65536).map((_, i) => i);
  const platform = new Float16Array(all.buffer);
  for (let h = 0; h < 65536; h++) {
    const want = platform[h];
    const got = f16BitsToF32(h);
    if (Number.isNaN(want)) ok(Number.isNaN(got), `f16 ${h.toString(16)} should be NaN`);
    else ok(Object.is(got, want), `f16 ${h.toString(16)}: got ${got}, want ${want}`);
    // Encoding back gives the same bits for every non-NaN pattern; NaN stays NaN.
    const back = f32ToF16Bits(got);
    if (Number.isNaN(want)) ok((back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0, `NaN ${h.toString(16)}`);
    else strictEqual(back, h, `f16 round trip of ${h.toString(16)}`);
  }
  // Rounding of arbitrary f32 values (including ties, overflow and subnormals) agrees with Float16Array.
  const xs = Array.from(randomF32(20000, 11, -70000, 70000));
  const special = [
    65520, // tie above max: rounds to inf
    65519.99,
    2 ** -25, // exact half of the smallest subnormal: rounds to even (0)
    2 ** -25 * 1.0000001,
    3 * 2 ** -25, // tie between subnormals 1 and 2: rounds to 2
    1 + 2 ** -11, // tie: stays 1
    1 + 3 * 2 ** -11, // tie: rounds up to even
    -0,
    1e-30,
    -1e-30,
    2 ** -14 - 2 ** -25, // tie between the largest subnormal and the smallest normal
  ];
  for (let k = 0; k < 2000; k++) xs.push(randomF32(1, 100 + k, -1, 1)[0] * 2 ** (k % 40 - 30));
  for (const x of [...xs, ...special]) {
    const f = Math.fround(x);
    const want = new Uint16Array(Float16Array.of(f).buffer)[0];
    strictEqual(f32ToF16Bits(f), want, `f16 rounding of ${f}`);
  }
  // bfloat16: every pattern round trips; rounding of f32 by nearest-even on the upper half.
  const u = new Uint32Array(1);
  const fv = new Float32Array(u.buffer);
  for (let b = 0; b < 65536; b++) {
    const v = bf16BitsToF32(b);
    u[0] = b << 16;
    ok(Object.is(v, fv[0]) || (Number.isNaN(v) && Number.isNaN(fv[0])), `bf16 ${b.toString(16)}`);
    if (!Number.isNaN(v)) strictEqual(f32ToBf16Bits(v), b, `bf16 round trip of ${b.toString(16)}`);
  }
  u[0] = 0x3f808000; // exact tie between 0x3f80 and 0x3f81: even is 0x3f80
  strictEqual(f32ToBf16Bits(fv[0]), 0x3f80);
  u[0] = 0x3f818000; // tie between 0x3f81 and 0x3f82: even is 0x3f82
  strictEqual(f32ToBf16Bits(fv[0]), 0x3f82);
  u[0] = 0x3f808001; // just above the tie
  strictEqual(f32ToBf16Bits(fv[0]), 0x3f81);
  u[0] = 0x7f7fffff; // max f32 rounds to inf in bf16
  strictEqual(f32ToBf16Bits(fv[0]), 0x7f80);
  const nan = f32ToBf16Bits(NaN);
  ok((nan & 0x7f80) === 0x7f80 && (nan & 0x7f) !== 0, "bf16 NaN stays NaN");
});

Deno.test("safetensors: round trip of F32/F16/BF16 tensors, ragged shapes, scalar and empty", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/rt.safetensors`;
    const a = randomF32(7 * 13, 1, -3, 3);
    const b = randomF32(5, 2, -100, 100);
    const c = randomF32(3 * 1 * 4, 3, -1, 1);
    const tensors = new Map([
      ["z.weight", { shape: [7, 13], data: a }],
      ["a.half", { shape: [5], data: b, dtype: "F16" as const }],
      ["m.bf", { shape: [3, 1, 4], data: c, dtype: "BF16" as const }],
      ["scalar", { shape: [], data: Float32Array.of(-2.5) }],
      ["empty", { shape: [0, 3], data: new Float32Array(0) }],
    ]);
    await writeSafetensors(path, tensors, { format: "pt", note: "ünïcode" });
    deepStrictEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["rt.safetensors"], "no temp file left");

    const raw = await Deno.readFile(path);
    const n = Number(new DataView(raw.buffer).getBigUint64(0, true));
    strictEqual(n % 8, 0, "header length is a multiple of 8");
    const header = JSON.parse(new TextDecoder().decode(raw.subarray(8, 8 + n)));
    deepStrictEqual(header.__metadata__, { format: "pt", note: "ünïcode" });

    const f = await SafetensorsFile.open(path);
    deepStrictEqual(
      [...f.tensors.keys()],
      ["a.half", "empty", "m.bf", "scalar", "z.weight"],
      "sorted by name",
    );
    deepStrictEqual(f.metadata, { format: "pt", note: "ünïcode" });
    deepStrictEqual(f.tensors.get("m.bf")!.shape, [3, 1, 4]);
    strictEqual(f.tensors.get("a.half")!.dtype, "F16");
    deepStrictEqual(await f.readF32("z.weight"), a, "F32 is exact");
    deepStrictEqual(await f.readF32("a.half"), Float32Array.from(Float16Array.from(b)), "F16 rounding");
    const cb = await f.readF32("m.bf");
    for (let i = 0; i < c.length; i++) {
      strictEqual(cb[i], bf16BitsToF32(f32ToBf16Bits(c[i])));
      ok(Math.abs(cb[i] - c[i]) <= Math.abs(c[i]) * 2 ** -8, "bf16 within half an ulp");
    }
    deepStrictEqual(await f.readF32("scalar"), Float32Array.of(-2.5));
    strictEqual((await f.readF32("empty")).length, 0);
    // Concurrent reads on one handle must not interleave their seeks.
    const [x, y] = await Promise.all([f.readF32("z.weight"), f.readF32("scalar")]);
    deepStrictEqual(x, a);
    deepStrictEqual(y, Float32Array.of(-2.5));
    await rejects(() => f.readF32("nope"), /no tensor named "nope"/);
    f.close();

    const all = await readSafetensors(path);
    deepStrictEqual(all.get("z.weight")!.data, a);
    deepStrictEqual(all.get("z.weight")!.shape, [7, 13]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors: streaming writer asks tensor by tensor and leaves nothing behind on failure", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/s.safetensors`;
    const asked: string[] = [];
    await writeSafetensorsStreaming(
      path,
      [{ name: "b", shape: [2] }, { name: "a", shape: [3], dtype: "F16" }],
      (s) => {
        asked.push(s.name);
        return s.name === "a" ? Float32Array.of(1, 2, 3) : Float32Array.of(4, 5);
      },
    );
    deepStrictEqual(asked, ["a", "b"]);
    const m = await readSafetensors(path);
    deepStrictEqual(m.get("a")!.data, Float32Array.of(1, 2, 3));
    deepStrictEqual(m.get("b")!.data, Float32Array.of(4, 5));

    const bad = `${dir}/bad.safetensors`;
    await rejects(
      () => writeSafetensorsStreaming(bad, [{ name: "w", shape: [2, 2] }], () => new Float32Array(3)),
      /bad\.safetensors: tensor "w" of shape \[2,2\] needs 4 f32 values, got 3/,
    );
    await rejects(
      () =>
        writeSafetensors(
          bad,
          new Map([["w", { shape: [1], data: Float32Array.of(1), dtype: "F64" as "F32" }]]),
        ),
      /tensor "w": cannot write dtype F64/,
    );
    deepStrictEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).sort(),
      ["s.safetensors"],
      "no partial files",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors: malformed files are rejected with errors naming the file and tensor", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const four = new Uint8Array(4);
    const cases: [string, () => Promise<string>, RegExp][] = [
      ["short", async () => {
        await Deno.writeFile(`${dir}/short.safetensors`, new Uint8Array(5));
        return `${dir}/short.safetensors`;
      }, /short\.safetensors: not a safetensors file: 5 bytes/],
      [
        "beyond",
        () => craft(dir, "beyond", "{}", new Uint8Array(0), 1000n),
        /beyond\.safetensors: header length 1000 reaches beyond the end of the file \(10 bytes/,
      ],
      [
        "json",
        () => craft(dir, "json", "{not json", four),
        /json\.safetensors: header is not valid UTF-8 JSON/,
      ],
      ["array", () => craft(dir, "array", "[1,2]", four), /array\.safetensors: header must be a JSON object/],
      ["null", () => craft(dir, "null", "null", four), /null\.safetensors: header must be a JSON object/],
      [
        "dtype",
        () => craft(dir, "dtype", '{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}', four),
        /dtype\.safetensors: tensor "w": unknown dtype "F33" \(known: .*readable as f32: F32, F16, BF16\)/,
      ],
      [
        "count",
        () => craft(dir, "count", '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', four),
        /count\.safetensors: tensor "w": shape \[2\] of F32 needs 8 bytes but data_offsets \[0,4\] span 4/,
      ],
      [
        "range",
        () => craft(dir, "range", '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', four),
        /range\.safetensors: tensor "w" ends at byte 8, beyond the data buffer \(4 bytes\)/,
      ],
      [
        "overlap",
        () =>
          craft(
            dir,
            "overlap",
            '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
            new Uint8Array(8),
          ),
        /overlap\.safetensors: tensor "b" starts at byte 4 but the previous tensor ends at 8/,
      ],
      [
        "gap",
        () =>
          craft(
            dir,
            "gap",
            '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}',
            new Uint8Array(12),
          ),
        /gap\.safetensors: tensor "b" starts at byte 8 but the previous tensor ends at 4/,
      ],
      [
        "extra",
        () =>
          craft(dir, "extra", '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', new Uint8Array(8)),
        /extra\.safetensors: tensors cover 4 bytes but the data buffer has 8/,
      ],
      [
        "offsets",
        () => craft(dir, "offsets", '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', four),
        /offsets\.safetensors: tensor "a": data_offsets must be \[begin, end\]/,
      ],
      [
        "shape",
        () => craft(dir, "shape", '{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', four),
        /shape\.safetensors: tensor "a": shape must be an array of non-negative integers/,
      ],
      [
        "meta",
        () =>
          craft(
            dir,
            "meta",
            '{"__metadata__":{"x":1},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
            four,
          ),
        /meta\.safetensors: "__metadata__"."x" must be a string/,
      ],
    ];
    for (const [what, make, re] of cases) {
      const path = await make();
      await rejects(() => SafetensorsFile.open(path), re, what);
    }
    // A known but non-float dtype opens (old checkpoints carry an I64 position_ids) but is not readable as f32.
    const p = await craft(
      dir,
      "int",
      '{"position_ids":{"dtype":"I64","shape":[1,2],"data_offsets":[0,16]},"w":{"dtype":"F32","shape":[],"data_offsets":[16,20]}}',
      new Uint8Array(20),
    );
    const f = await SafetensorsFile.open(p);
    await rejects(
      () => f.readF32("position_ids"),
      /int\.safetensors: tensor "position_ids" has dtype I64; only F32, F16, BF16 can be read as f32/,
    );
    f.close();
    await rejects(() => readSafetensors(p), /position_ids/);
    deepStrictEqual([...(await readSafetensors(p, { skipNonFloat: true })).keys()], ["w"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A Python that can import safetensors+numpy (or torch), or null. `$PYTHON` is tried first. */
async function findPython(): Promise<{ exe: string; lib: "numpy" | "torch" } | null> {
  const tries: [string, "numpy" | "torch"][] = [];
  const env = Deno.env.get("PYTHON");
  if (env) tries.push([env, "numpy"], [env, "torch"]);
  tries.push(["python3", "numpy"], ["/usr/bin/python3", "torch"], ["python3", "torch"]);
  for (const [exe, lib] of tries) {
    const mod = lib === "numpy" ? "import safetensors, numpy" : "import torch, safetensors";
    try {
      const r = await new Deno.Command(exe, { args: ["-c", mod], stdout: "null", stderr: "null" }).output();
      if (r.success) return { exe, lib };
    } catch { /* not installed */ }
  }
  return null;
}

Deno.test("safetensors: files written by Python safetensors load, and ours load in Python", async () => {
  const py = await findPython();
  if (!py) {
    console.log(
      "SKIP: no Python with `safetensors` and `numpy` (or torch) found; set $PYTHON to one to run this interop test",
    );
    return;
  }
  const dir = await Deno.makeTempDir();
  try {
    const theirs = `${dir}/theirs.safetensors`;
    const script = py.lib === "numpy"
      ? `
import numpy as np, sys
from safetensors.numpy import save_file
x = (np.arange(35, dtype=np.float32).reshape(5, 7) - 17) / 8
save_file({"x32": x, "x16": x.astype(np.float16), "i64": np.arange(3, dtype=np.int64)}, sys.argv[1],
  metadata={"format": "pt"})
`
      : `
import torch, sys
from safetensors.torch import save_file
x = (torch.arange(35, dtype=torch.float32).reshape(5, 7) - 17) / 8
save_file({"x32": x, "x16": x.half(), "xbf": x.bfloat16(), "i64": torch.arange(3)}, sys.argv[1],
  metadata={"format": "pt"})
`;
    const r = await new Deno.Command(py.exe, { args: ["-c", script, theirs], stderr: "piped" }).output();
    ok(r.success, new TextDecoder().decode(r.stderr));
    const f = await SafetensorsFile.open(theirs);
    const want = Float32Array.from({ length: 35 }, (_, i) => (i - 17) / 8); // all exact in f16 and bf16
    deepStrictEqual(await f.readF32("x32"), want);
    deepStrictEqual(await f.readF32("x16"), want);
    if (py.lib === "torch") deepStrictEqual(await f.readF32("xbf"), want);
    deepStrictEqual(f.tensors.get("x16")!.shape, [5, 7]);
    strictEqual(f.metadata.format, "pt");
    f.close();

    const ours = `${dir}/ours.safetensors`;
    const data = randomF32(6, 5);
    await writeSafetensors(
      ours,
      new Map([["w", { shape: [2, 3], data }], ["h", { shape: [6], data, dtype: "F16" }]]),
      {
        format: "pt",
      },
    );
    const check = py.lib === "numpy"
      ? `
import sys, json
from safetensors.numpy import load_file
t = load_file(sys.argv[1])
print(json.dumps({k: [list(v.shape), str(v.dtype), [float(a) for a in v.reshape(-1)]] for k, v in t.items()}))
`
      : `
import sys, json
from safetensors.torch import load_file
t = load_file(sys.argv[1])
print(json.dumps({k: [list(v.shape), str(v.dtype).replace("torch.", ""), v.float().reshape(-1).tolist()] for k, v in t.items()}))
`;
    const out = await new Deno.Command(py.exe, {
      args: ["-c", check, ours],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    ok(out.success, new TextDecoder().decode(out.stderr));
    const got = JSON.parse(new TextDecoder().decode(out.stdout));
    deepStrictEqual(got.w[0], [2, 3]);
    strictEqual(got.w[1], "float32");
    deepStrictEqual(Float32Array.from(got.w[2]), data);
    strictEqual(got.h[1], "float16");
    deepStrictEqual(Float32Array.from(got.h[2]), Float32Array.from(Float16Array.from(data)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
