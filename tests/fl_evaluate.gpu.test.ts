/**
 * Evaluation batches the examples sorted by length; its loss and predictions must be those of one forward per
 * example, in data order.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { RobertaModel } from "../model/roberta.ts";
import { type EncodedExample, makeBatch } from "../model/batch.ts";
import { evaluate } from "../fl/evaluate.ts";
import { KeyedRandom, Purpose } from "../kernels/rng.ts";
import { randomAdapter, TINY_ROBERTA, writeTinyModel } from "./model_fixture.ts";
import { relErr } from "./util.ts";

const CFG = TINY_ROBERTA;

Deno.test("evaluate: length-sorted batches give the loss and predictions of one forward per example", async () => {
  const dir = await writeTinyModel(CFG, 4);
  try {
    const model = await RobertaModel.load(dir, {
      numLabels: 3,
      lora: { r: 4, alpha: 8, targets: ["query"] },
    });
    model.setAdapter(randomAdapter(model, 2));
    const r = new KeyedRandom([5, Purpose.test, 1]);
    const data: EncodedExample[] = [9, 3, 14, 5, 14, 4, 7, 11].map((len) => ({
      ids: Int32Array.from(
        { length: len },
        (_, i) => (i === 0 ? 0 : i === len - 1 ? 2 : 3 + r.int(CFG.vocabSize - 3)),
      ),
      label: r.int(3),
    }));
    let wantLoss = 0;
    const wantPred: number[] = [];
    for (let i = 0; i < data.length; i++) {
      const z = Array.from(await model.forward(makeBatch(data, [i], CFG.padTokenId), { train: false }));
      const mx = Math.max(...z);
      wantLoss += mx + Math.log(z.reduce((s, v) => s + Math.exp(v - mx), 0)) - z[data[i].label];
      wantPred.push(z.indexOf(mx));
    }
    wantLoss /= data.length;
    for (const batch of [3, 8]) {
      let pred: number[] = [];
      const res = await evaluate(
        model,
        (p) => {
          pred = Array.from(p);
          return { n: p.length };
        },
        data,
        CFG.padTokenId,
        batch,
      );
      deepStrictEqual(pred, wantPred, `batch ${batch}: predictions in data order`);
      const err = relErr([res.loss], [wantLoss]);
      ok(err < 1e-5, `batch ${batch}: loss ${res.loss} vs ${wantLoss} (rel. error ${err})`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
