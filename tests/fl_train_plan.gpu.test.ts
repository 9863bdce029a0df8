/** `deno task optimize --out PLAN` feeds `deno task train --plan PLAN`: γ_k and simulated cost per device-round. */
import { ok, strictEqual } from "node:assert/strict";
import { drawScenarioJson } from "../opt/scenario.ts";
import { readPlan } from "../opt/plan.ts";
import { resolveRunConfig } from "../fl/run_config.ts";
import { readMetrics } from "../fl/run_log.ts";
import { trainRun } from "../tasks/train_run.ts";

Deno.test("train --plan: the optimiser's γ_k drive the masks and the logs carry simulated latency and energy", async () => {
  const root = await Deno.makeTempDir({ prefix: "fedlodrop-plan-" });
  try {
    await Deno.writeTextFile(`${root}/scenario.json`, JSON.stringify(drawScenarioJson(3, 5, 0.5e6)));
    const opt = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../tasks/optimize.ts", import.meta.url).pathname,
        "--scenario",
        `${root}/scenario.json`,
        "--method",
        "psca",
        "--out",
        `${root}/plan.json`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    strictEqual(opt.code, 0, new TextDecoder().decode(opt.stderr));
    const plan = await readPlan(`${root}/plan.json`);
    strictEqual(plan.devices.length, 3);
    const cfg = resolveRunConfig({
      name: "plan",
      out: `${root}/run`,
      rounds: 1,
      localEpochs: 1,
      maxTrain: 60,
      maxDev: 16,
      trainEvalSize: 8,
      plan: `${root}/plan.json`,
    });
    await trainRun(cfg, { quiet: true });
    const dr = (await readMetrics(`${root}/run/metrics.jsonl`)).filter((r) => r.kind === "device_round");
    strictEqual(dr.length, 3);
    for (const r of dr) {
      const d = plan.devices[r.device];
      strictEqual(r.gamma, d.gamma);
      strictEqual(r.simLatency_s, d.latency_s);
      strictEqual(r.simEnergy_j, d.energy_j);
    }
    ok(dr.some((r) => (r.gamma as number) > 0), "the plan drops something");
    // a plan for another number of devices is refused before training
    const bad = resolveRunConfig({ name: "bad", out: `${root}/bad`, devices: 4, plan: `${root}/plan.json` });
    let msg = "";
    await trainRun(bad, { quiet: true }).catch((e) => (msg = (e as Error).message));
    ok(/has 3 devices but the run has 4/.test(msg), msg);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
