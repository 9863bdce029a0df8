/**
 * `deno task test`: runs the CPU-only test files in one `deno test` process and the WebGPU test files
 * (`*.gpu.test.ts`) in another, then judges each by Deno's own summary line. llvmpipe occasionally aborts
 * while the process tears down after every test has finished ("double free or corruption"); a process whose
 * summary reads `ok | N passed | 0 failed` is counted as passed and the abort is reported as a note. A process
 * without a summary, or with failures, fails the run. Extra arguments are passed to both `deno test` calls
 * (e.g. `--filter resume`).
 * @module
 */
const dir = new URL(".", import.meta.url).pathname;
const files = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".test.ts")).map((e) =>
  e.name
).sort();
const gpu = files.filter((f) => f.endsWith(".gpu.test.ts"));
const cpu = files.filter((f) => !f.endsWith(".gpu.test.ts"));
const extra = Deno.args;
const env = { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp" };

async function runGroup(name: string, group: string[], flags: string[]): Promise<boolean> {
  if (group.length === 0) return true;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["test", "--allow-all", ...flags, ...extra, ...group.map((f) => dir + f)],
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let out = "";
  const dec = new TextDecoder();
  for await (const chunk of child.stdout) {
    const text = dec.decode(chunk, { stream: true });
    out += text;
    await Deno.stdout.write(chunk);
  }
  const status = await child.status;
  const summary = /^(ok|FAILED) \| (\d+) passed[^|]*\| (\d+) failed/m.exec(
    out.replace(new RegExp(String.fromCharCode(27) + "\\[[0-9;]*m", "g"), ""),
  );
  if (!summary) {
    console.error(`tests: the ${name} test process ended (code ${status.code}) without a summary line`);
    return false;
  }
  const ok = summary[1] === "ok" && summary[3] === "0";
  if (ok && !status.success) {
    console.error(
      `tests: note: the ${name} test process exited with code ${status.code}${
        status.signal ? ` (${status.signal})` : ""
      } after reporting every test passed (a known llvmpipe teardown abort); counted as passed`,
    );
  }
  return ok;
}

const cpuOk = await runGroup("CPU", cpu, []);
const gpuOk = await runGroup("WebGPU", gpu, ["--unstable-webgpu"]);
Deno.exit(cpuOk && gpuOk ? 0 : 1);
