/**
 * End-to-end federated runs on a tiny random RoBERTa: a synthetic separable task is learned well above chance;
 * a run killed after round 2 and resumed reaches exactly the metrics of an uninterrupted run; bad flags fail
 * before any work.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { KeyedRandom } from "../kernels/rng.ts";
import { resolveRunConfig } from "../fl/run_config.ts";
import { readMetrics } from "../fl/run_log.ts";
import { pathExists } from "../fl/atomic_write.ts";
import { trainRun } from "../tasks/train_run.ts";

const FILLER = [
  "the",
  "movie",
  "plot",
  "actors",
  "story",
  "was",
  "quite",
  "very",
  "and",
  "scenes",
  "music",
  "film",
];

/** SST-2-layout files where the label is decided by one cue word among random filler words. */
async function synthTask(dir: string, train: number, dev: number): Promise<void> {
  const rows = (n: number, seed: number) => {
    const r = new KeyedRandom([seed, 4242]);
    const out = ["sentence\tlabel"];
    for (let i = 0; i < n; i++) {
      const label = r.int(2);
      const len = 3 + r.int(5);
      const w = Array.from({ length: len }, () => FILLER[r.int(FILLER.length)]);
      w.splice(r.int(len + 1), 0, label ? "wonderful" : "terrible");
      out.push(`${w.join(" ")}\t${label}`);
    }
    return out.join("\n") + "\n";
  };
  await Deno.mkdir(`${dir}/SST-2`, { recursive: true });
  await Deno.writeTextFile(`${dir}/SST-2/train.tsv`, rows(train, 1));
  await Deno.writeTextFile(`${dir}/SST-2/dev.tsv`, rows(dev, 2));
}

Deno.test("train: FedLoDrop (γ = 0.3, sub-adapters, fedex) learns a synthetic separable task well above chance", async () => {
  const root = await Deno.makeTempDir({ prefix: "fedlodrop-e2e-" });
  try {
    await synthTask(`${root}/glue`, 240, 100);
    const cfg = resolveRunConfig({
      name: "synth",
      data: `${root}/glue`,
      out: `${root}/run`,
      rounds: 4,
      localEpochs: 4,
      batch: 16,
      lr: 0.03,
      gamma: 0.3,
      trainEvalSize: 64,
    });
    const s = await trainRun(cfg, { quiet: true });
    // chance is ~0.5 (majority 0.55); the cue word is learned within a few rounds
    ok(s.bestDev >= 0.85, `best dev accuracy ${s.bestDev} (final ${s.finalDev})`);
    const recs = await readMetrics(`${root}/run/metrics.jsonl`);
    strictEqual(recs.filter((r) => r.kind === "round").length, 4);
    strictEqual(recs.filter((r) => r.kind === "device_round").length, 12);
    for (
      const f of [
        "run.json",
        "summary.json",
        "metric.svg",
        "bytes.svg",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "adapter/merged_base/model.safetensors",
        "checkpoint/state.json",
      ]
    ) {
      ok((await Deno.stat(`${root}/run/${f}`)).isFile, f);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

function stripTimes(recs: Record<string, unknown>[]): Record<string, unknown>[] {
  return recs.map((r) => {
    const { seconds: _s, tokensPerSecond: _t, ...rest } = r;
    return rest;
  });
}

Deno.test("train: a run killed after round 2 and resumed matches an uninterrupted run exactly", async () => {
  const root = await Deno.makeTempDir({ prefix: "fedlodrop-resume-" });
  try {
    await synthTask(`${root}/glue`, 60, 30);
    const args = [
      "--data",
      `${root}/glue`,
      "--rounds",
      "4",
      "--local-epochs",
      "1",
      "--batch",
      "16",
      "--lr",
      "0.01",
      "--gamma",
      "0.4",
      "--train-eval-size",
      "16",
      "--seed",
      "3",
      // 3 steps of 16 from each device's 20 examples: rounds span passes; batches grouped by length.
      "--local-steps",
      "3",
      "--group-by-length",
    ];
    const deno = Deno.execPath();
    const env = { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" };
    const script = new URL("../tasks/train.ts", import.meta.url).pathname;
    const run = (extra: string[]) =>
      new Deno.Command(deno, {
        args: ["run", "-A", "--unstable-webgpu", script, ...extra],
        env,
        stdout: "null",
        stderr: "piped",
      });
    // uninterrupted
    const full = await run([...args, "--out", `${root}/full`]).output();
    strictEqual(full.code, 0, new TextDecoder().decode(full.stderr));
    // killed as soon as the round-2 checkpoint exists
    // (it also skips the merged base model, which changes nothing else and survives the resume via run.json)
    const child = run([...args, "--merged-model", "skip", "--out", `${root}/killed`]).spawn();
    child.stderr.cancel();
    let killed = false;
    for (let i = 0; i < 1200 && !killed; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        const st = JSON.parse(await Deno.readTextFile(`${root}/killed/checkpoint/state.json`));
        if (st.round >= 1) {
          child.kill("SIGKILL");
          killed = true;
        }
      } catch { /* not yet */ }
    }
    const status = await child.status;
    ok(killed && !status.success, "the run was killed mid-way");
    const st = JSON.parse(await Deno.readTextFile(`${root}/killed/checkpoint/state.json`));
    ok(st.round >= 1 && st.round < 3, `killed after round ${st.round + 1}`);
    const resumed = await run(["--resume", `${root}/killed`]).output();
    strictEqual(resumed.code, 0, new TextDecoder().decode(resumed.stderr));
    const a = stripTimes(await readMetrics(`${root}/full/metrics.jsonl`) as Record<string, unknown>[]);
    const b = stripTimes(await readMetrics(`${root}/killed/metrics.jsonl`) as Record<string, unknown>[]);
    strictEqual(a.filter((r) => r.kind === "round").length, 4);
    deepStrictEqual(b, a);
    const adA = await Deno.readFile(`${root}/full/adapter/adapter_model.safetensors`);
    const adB = await Deno.readFile(`${root}/killed/adapter/adapter_model.safetensors`);
    deepStrictEqual(adB, adA);
    ok(
      await pathExists(`${root}/full/adapter/merged_base/model.safetensors`),
      "FedEx writes the merged base model",
    );
    ok(!(await pathExists(`${root}/killed/adapter/merged_base`)), "--merged-model skip writes none");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("train: bad flags and config values are clear errors before any work", async () => {
  const script = new URL("../tasks/train.ts", import.meta.url).pathname;
  const cases: [string[], RegExp][] = [
    [["--gamma", "1.5"], /config field "gamma"/],
    [["--devices", "3", "--gamma", "0.1,0.2"], /gamma.*one per device/],
    [["--aggregator", "fedsgd"], /config field "aggregator"/],
    [["--split", "dirichlet:-1"], /config field "split"/],
    [["--targets", "query,foo"], /unknown target foo/],
    [["--lr", "abc"], /--lr: "abc" is not a number/],
    [["--no-such-flag"], /no-such-flag/],
    [["--task", "sst3"], /sst3/],
    [["--merged-model", "maybe"], /config field "mergedModel"/],
    [["--local-steps", "0"], /config field "localSteps"/],
    [["--local-steps", "2.5"], /config field "localSteps"/],
  ];
  for (const [args, re] of cases) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-webgpu",
        script,
        ...args,
        "--out",
        "/nonexistent/should-not-be-created",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    ok(out.code !== 0, `${args.join(" ")} should fail`);
    ok(re.test(err), `${args.join(" ")}: stderr was ${err}`);
  }
});

Deno.test("train: the built-in default run completes and says it is a random-model demo", async () => {
  const out = await Deno.makeTempDir({ prefix: "fedlodrop-default-" });
  try {
    const res = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-webgpu",
        new URL("../tasks/train.ts", import.meta.url).pathname,
        "--rounds",
        "1",
        "--out",
        out,
      ],
      env: { XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR") ?? "/tmp", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(res.stdout);
    strictEqual(res.code, 0, new TextDecoder().decode(res.stderr));
    ok(/round +train-loss/.test(stdout), stdout);
    ok(/RANDOM tiny RoBERTa/.test(stdout), stdout);
    const summary = JSON.parse(await Deno.readTextFile(`${out}/summary.json`));
    strictEqual(summary.task, "sst2");
    strictEqual(summary.rounds, 1);
    ok(summary.bytesUp > 0);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});
