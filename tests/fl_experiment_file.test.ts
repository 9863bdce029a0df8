/** Experiment files: one run, several runs, a sweep, a TS module; flags override; bad files are clear errors. */
import { deepStrictEqual, rejects, strictEqual, throws } from "node:assert/strict";
import { loadExperiment, parseTrainArgs } from "../tasks/train.ts";
import { gammasForRound, resolveRunConfig } from "../fl/run_config.ts";

Deno.test("experiment files: sweep expands, flags override, TS modules load", async () => {
  const dir = await Deno.makeTempDir({ prefix: "fedlodrop-exp-" });
  try {
    await Deno.writeTextFile(
      `${dir}/sweep.json`,
      JSON.stringify({
        base: { name: "s", rounds: 2 },
        sweep: { gamma: [0, 0.5], aggregator: ["fedex", "ffa"] },
      }),
    );
    const e = await loadExperiment(`${dir}/sweep.json`, { seed: 7 });
    strictEqual(e.runs.length, 4);
    deepStrictEqual(e.sweepFields, ["gamma", "aggregator"]);
    deepStrictEqual(e.runs.map((r) => r.name), [
      "s_gamma=0_aggregator=fedex",
      "s_gamma=0_aggregator=ffa",
      "s_gamma=0.5_aggregator=fedex",
      "s_gamma=0.5_aggregator=ffa",
    ]);
    for (const r of e.runs) strictEqual(r.seed, 7);
    await Deno.writeTextFile(
      `${dir}/one.ts`,
      `export default { run: { name: "ts-run", task: "rte", gamma: [0.1, 0.2, 0.3] } };\n`,
    );
    const t = await loadExperiment(`${dir}/one.ts`);
    const cfg = resolveRunConfig(t.runs[0]);
    strictEqual(cfg.task, "rte");
    deepStrictEqual(gammasForRound(cfg, 0), [0.1, 0.2, 0.3]);
    const parsed = await parseTrainArgs(["--experiment", `${dir}/one.ts`, "--rounds", "9"]);
    strictEqual(parsed.experiment.runs[0].rounds, 9);
    strictEqual(parsed.jobs, 1);
    strictEqual((await parseTrainArgs(["--experiment", `${dir}/sweep.json`, "--jobs", "3"])).jobs, 3);
    for (const bad of ["0", "1.5", "two"]) {
      await rejects(
        () => parseTrainArgs(["--jobs", bad]),
        new RegExp(`--jobs: "${bad}" is not a positive integer`),
      );
    }
    await Deno.writeTextFile(`${dir}/bad.json`, `{"run": {"gama": 0.3}}`);
    const bad = await loadExperiment(`${dir}/bad.json`);
    throws(() => resolveRunConfig(bad.runs[0]), /config field "gama": unknown field/);
    await Deno.writeTextFile(`${dir}/typo.json`, `{"runz": []}`);
    await rejects(() => loadExperiment(`${dir}/typo.json`), /unknown field "runz"/);
    await rejects(() => loadExperiment(`${dir}/missing.json`), /experiment file .*missing\.json/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("run config: per-round γ overrides, validation names the field", () => {
  const c = resolveRunConfig({ devices: 2, gamma: 0.3, gammaRounds: [[0, 0.5]] });
  deepStrictEqual(gammasForRound(c, 0), [0, 0.5]);
  deepStrictEqual(gammasForRound(c, 1), [0.3, 0.3]);
  throws(() => resolveRunConfig({ devices: 2, gammaRounds: [[0.1]] }), /gammaRounds\[0\]/);
  throws(() => resolveRunConfig({ participation: 0 }), /"participation"/);
  throws(() => resolveRunConfig({ split: "sizes:1,2" }), /"split": gives 2 sizes for 3 devices/);
  throws(() => resolveRunConfig({ batch: 0 }), /"batch"/);
});
