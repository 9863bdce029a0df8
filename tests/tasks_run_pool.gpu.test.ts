/**
 * The run pool: runs side by side in child processes give the same metrics and adapter bytes as runs one after
 * another in this process; a failing child rejects naming it and stops further starts.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { resolveRunConfig, type RunConfig } from "../fl/run_config.ts";
import { readMetrics } from "../fl/run_log.ts";
import { llvmpipeThreadsPerJob, runConfigs } from "../tasks/run_pool.ts";

/** Two short runs on the committed SST-2 sample with the tiny random model (different γ and seeds). */
function configs(root: string): RunConfig[] {
  return [[0, 0], [0.5, 1]].map(([gamma, seed]) =>
    resolveRunConfig({
      name: `g${gamma}-s${seed}`,
      out: `${root}/g${gamma}-s${seed}`,
      gamma,
      seed,
      rounds: 2,
      maxTrain: 48,
      maxDev: 24,
      trainEvalSize: 16,
      mergedModel: "skip",
    })
  );
}

/** What a run's files say, without wall times. */
async function outcome(dir: string): Promise<unknown> {
  const recs = (await readMetrics(`${dir}/metrics.jsonl`)).map((r) => {
    const { seconds: _s, tokensPerSecond: _t, ...rest } = r;
    return rest;
  });
  const adapter = await Deno.readFile(`${dir}/adapter/adapter_model.safetensors`);
  return { recs, adapter: Array.from(adapter) };
}

Deno.test("run pool: side by side (jobs 2, child processes) gives what one after another in-process gives", async () => {
  const root = await Deno.makeTempDir({ prefix: "fedlodrop-pool-" });
  try {
    const serial = await runConfigs(configs(`${root}/serial`), { jobs: 1 });
    const started: number[] = [], finished: number[] = [];
    const parallel = await runConfigs(configs(`${root}/parallel`), {
      jobs: 2,
      onStart: (_c, i) => started.push(i),
      onFinish: (c, s, i) => {
        strictEqual(s.name, c.name);
        finished.push(i);
      },
    });
    deepStrictEqual(started, [0, 1]);
    deepStrictEqual(finished.toSorted(), [0, 1]);
    for (const [i, s] of serial.entries()) {
      const p = parallel[i];
      strictEqual(p.name, s.name);
      strictEqual(p.runDir, `${root}/parallel/${s.name}`);
      for (const k of ["finalDev", "bestDev", "finalTrain", "bytesUp", "rounds"] as const) {
        strictEqual(p[k], s[k], `${s.name} ${k}`);
      }
      deepStrictEqual(await outcome(p.runDir), await outcome(s.runDir), s.name);
    }
    // the two runs differ from each other, so the comparison above can tell them apart
    ok(JSON.stringify(await outcome(serial[0].runDir)) !== JSON.stringify(await outcome(serial[1].runDir)));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("run pool: a failing child rejects with its name and no further run starts", async () => {
  const root = await Deno.makeTempDir({ prefix: "fedlodrop-pool-bad-" });
  try {
    const [good] = configs(root);
    const bad = (name: string) => ({ ...good, name, out: `${root}/${name}`, data: `${root}/no-such-glue` });
    const started: string[] = [];
    await rejects(
      () => runConfigs([bad("bad1"), bad("bad2"), good], { jobs: 2, onStart: (c) => started.push(c.name) }),
      /2 run\(s\) failed: bad[12] \(exit code 1\), bad[12] \(exit code 1\); their errors are printed above; 1 run\(s\) not started/,
    );
    deepStrictEqual(started.toSorted(), ["bad1", "bad2"]);
    await rejects(() => runConfigs([good], { jobs: 0 }), /jobs must be a positive integer, got 0/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("run pool: each child's llvmpipe threads are an even share of the cores, at least 1", () => {
  deepStrictEqual([[2, 1], [2, 2], [2, 3], [16, 2], [16, 3]].map(([c, j]) => llvmpipeThreadsPerJob(c, j)), [
    2,
    1,
    1,
    8,
    5,
  ]);
  // Shared among the children that run: fewer configs than jobs leave the rest of the cores to them.
  deepStrictEqual(
    [[2, 2, 1], [2, 2, 5], [16, 4, 2], [16, 4, 3]].map(([c, j, r]) => llvmpipeThreadsPerJob(c, j, r)),
    [
      2,
      1,
      8,
      5,
    ],
  );
});

Deno.test("run pool: two configs writing to one run folder are refused before anything runs", async () => {
  const root = await Deno.makeTempDir({ prefix: "fedlodrop-pool-dup-" });
  try {
    const [a, b] = configs(root);
    for (const jobs of [1, 2]) {
      await rejects(
        runConfigs([a, { ...b, out: `${root}/./g0-s0` }], { jobs }),
        (e: Error) => {
          ok(e.message.includes(`runs "g0-s0" and "g0.5-s1" would both write to ${root}/./g0-s0`), e.message);
          return true;
        },
      );
    }
    deepStrictEqual([...Deno.readDirSync(root)], [], "nothing was written");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
