import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { readMetrics, RunLog, summarizeRun } from "../fl/run_log.ts";

async function withDir(f: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await f(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("RunLog: device records queued, written with the round; readMetrics round trip", async () => {
  await withDir(async (dir) => {
    const p = `${dir}/metrics.jsonl`;
    const log = await RunLog.create(p);
    log.deviceRound({ round: 0, device: 0, bytesUp: 100, bytesDown: 120, gamma: 0.3 });
    log.deviceRound({ round: 0, device: 1, bytesUp: 50, bytesDown: 60, gamma: 0.1 });
    strictEqual(await Deno.readTextFile(p), "", "device records wait for the round");
    await log.round({ round: 0, dev: { accuracy: 0.6 }, loss: NaN });
    strictEqual((await Deno.readTextFile(p)).split("\n").length, 4, "3 lines + trailing newline, flushed");
    log.deviceRound({ round: 1, device: 0, bytesUp: 100, bytesDown: 120 });
    await log.round({ round: 1, dev: { accuracy: 0.75 } });
    await log.round({ round: 2, dev: { accuracy: 0.7 } });
    const recs = await readMetrics(p);
    strictEqual(recs.length, 6);
    deepStrictEqual(recs[2], { kind: "round", round: 0, dev: { accuracy: 0.6 }, loss: null });
    deepStrictEqual(recs[0], {
      kind: "device_round",
      round: 0,
      device: 0,
      bytesUp: 100,
      bytesDown: 120,
      gamma: 0.3,
    });
    const s = summarizeRun(recs, { metric: "dev.accuracy" });
    deepStrictEqual(s, { rounds: 3, final: 0.7, best: 0.75, bestRound: 1, bytesUp: 250, bytesDown: 300 });
    const low = summarizeRun(recs, { metric: "dev.accuracy", higherIsBetter: false });
    strictEqual(low.bestRound, 0);
    ok(Number.isNaN(summarizeRun(recs, { metric: "missing" }).best));
  });
});

Deno.test("RunLog: resume keeps rounds up to the checkpoint; fresh create truncates", async () => {
  await withDir(async (dir) => {
    const p = `${dir}/metrics.jsonl`;
    const log = await RunLog.create(p);
    for (let round = 0; round < 4; round++) {
      log.deviceRound({ round, device: 0 });
      await log.round({ round, m: round });
    }
    const resumed = await RunLog.create(p, { resumeAfterRound: 1 });
    await resumed.round({ round: 2, m: 20 });
    deepStrictEqual((await readMetrics(p)).filter((r) => r.kind === "round").map((r) => r.m), [0, 1, 20]);
    await RunLog.create(p);
    deepStrictEqual(await readMetrics(p), []);
    // Resume with no file yet starts empty.
    await RunLog.create(`${dir}/new.jsonl`, { resumeAfterRound: 3 });
    deepStrictEqual(await readMetrics(`${dir}/new.jsonl`), []);
  });
});

Deno.test("RunLog/readMetrics: clear errors", async () => {
  await withDir(async (dir) => {
    const p = `${dir}/metrics.jsonl`;
    const log = await RunLog.create(p);
    throws(() => log.deviceRound({ round: 0, device: -1 }), /device_round.device/);
    await rejects(() => log.round({ round: 1.5 }), /round.round/);
    await Deno.writeTextFile(p, `{"kind":"round","round":0}\n{oops\n`);
    await rejects(() => readMetrics(p), /metrics.jsonl:2: not valid JSON/);
    await Deno.writeTextFile(p, `{"kind":"epoch","round":0}\n`);
    await rejects(() => readMetrics(p), /metrics.jsonl:1: expected an object with kind/);
  });
});
