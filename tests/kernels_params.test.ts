/**
 * Kernel parameters as a storage buffer (lavapipe): the WGSL rewrite, the adapter test, and that every kernel
 * declares its parameters in the one form the rewrite recognises. The GPU side (same results as uniforms) is in
 * kernels_rng_recorder.gpu.test.ts.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { isLavapipe, paramsToStorage } from "../kernels/device.ts";

Deno.test("paramsToStorage: rewrites the parameter declaration and nothing else", () => {
  const src = `struct P { m: u32 }
@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> other: P;
fn f() { let x = p.m; }`;
  const got = paramsToStorage(src);
  strictEqual(
    got,
    src.replace("var<uniform> p: P;", "var<storage, read> p: P;"),
    "only `var<uniform> p` changes (no `main` to read them into)",
  );
  strictEqual(paramsToStorage("var<uniform>   p :P;"), "var<storage, read>   p :P;");
  strictEqual(paramsToStorage("var<uniform> pp: P;"), "var<uniform> pp: P;");
  // main reads the parameters once, after its opening brace (its parameter list has parentheses of its own)
  const kernel = `var<uniform> p: P;
fn helper() -> u32 { return p.m; }
@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) g: vec3<u32>) { out[g.x] = p.m; }`;
  strictEqual(
    paramsToStorage(kernel),
    kernel.replace("var<uniform> p", "var<storage, read> p").replace(
      "vec3<u32>) {",
      "vec3<u32>) {\n  let p = p;",
    ),
  );
  strictEqual(
    paramsToStorage("fn main() { let x = 1; }"),
    "fn main() { let x = 1; }",
    "no parameters: unchanged",
  );
});

Deno.test("isLavapipe: CPU adapters that offer shader-f16 (wgpu's GL backend never does)", () => {
  deepStrictEqual(
    [
      isLavapipe(true, new Set(["shader-f16", "timestamp-query"])),
      isLavapipe(true, new Set(["timestamp-query"])),
      isLavapipe(false, new Set(["shader-f16"])),
    ],
    [true, false, false],
  );
});

Deno.test("kernels: every uniform declaration is the parameter struct `p` (what paramsToStorage rewrites)", () => {
  const dir = new URL("../kernels/", import.meta.url);
  let seen = 0;
  for (const e of Deno.readDirSync(dir)) {
    if (!e.isFile || !e.name.endsWith(".ts")) continue;
    const text = Deno.readTextFileSync(new URL(e.name, dir));
    for (const m of text.matchAll(/@binding\(\d+\)\s*var<uniform>[^;]*;/g)) {
      seen++;
      ok(/var<uniform>\s+p\s*:/.test(m[0]), `kernels/${e.name}: "${m[0]}" would stay a uniform on lavapipe`);
    }
  }
  ok(seen >= 10, `found only ${seen} uniform declarations in kernels/`);
});
