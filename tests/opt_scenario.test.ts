/** Scenario files: LoRA/head sizes from a model config, validation errors naming the field, the default file. */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { join } from "node:path";
import {
  dbmToWatts,
  drawScenarioJson,
  gainFromDistance,
  loadScenario,
  loraSizes,
  parseScenario,
} from "../opt/scenario.ts";

const ROBERTA_LARGE = { hidden_size: 1024, num_hidden_layers: 24, intermediate_size: 4096 };

Deno.test("loraSizes: roberta-large r=8 on query/value gives 786432 adapter and 1051650 head values", () => {
  deepStrictEqual(
    loraSizes({
      hiddenSize: 1024,
      numLayers: 24,
      intermediateSize: 4096,
      loraRank: 8,
      targets: ["query", "value"],
      numLabels: 2,
    }),
    { adapterParams: 786432, headParams: 1051650 },
  );
  // the FFN modules are rectangular: intermediate.dense and output.dense are both r·(H + I)
  const ffn = loraSizes({
    hiddenSize: 8,
    numLayers: 3,
    intermediateSize: 32,
    loraRank: 2,
    targets: ["intermediate.dense", "output.dense", "key"],
    numLabels: 3,
  });
  strictEqual(ffn.adapterParams, 3 * (2 * (32 + 8) + 2 * (8 + 32) + 2 * 16));
  strictEqual(ffn.headParams, 64 + 8 + 24 + 3);
  throws(
    () => loraSizes({ ...ROBERTA_LARGE_IN(), targets: ["qeury"] }),
    /model\.targets: unknown LoRA target "qeury"/,
  );
});

function ROBERTA_LARGE_IN() {
  return {
    hiddenSize: 1024,
    numLayers: 24,
    intermediateSize: 4096,
    loraRank: 8,
    targets: ["query"],
    numLabels: 2,
  };
}

function assertFail(msg: string, re: RegExp): never {
  throw new Error(`message "${msg}" does not match ${re}`);
}

function baseJson(): Record<string, unknown> {
  return drawScenarioJson(4, 3);
}

Deno.test("parseScenario: model.config resolved relative to the scenario file gives the sizes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "models"));
    await Deno.writeTextFile(join(dir, "models", "config.json"), JSON.stringify(ROBERTA_LARGE));
    const j = baseJson();
    delete j.adapter_params;
    delete j.head_params;
    j.model = { config: "models/config.json", lora_rank: 8, targets: ["query", "value"], num_labels: 2 };
    await Deno.writeTextFile(join(dir, "s.json"), JSON.stringify(j));
    const sc = await loadScenario(join(dir, "s.json"));
    strictEqual(sc.adapterParams, 786432);
    strictEqual(sc.headParams, 1051650);
    j.model = { config: "missing.json" };
    await Deno.writeTextFile(join(dir, "bad.json"), JSON.stringify(j));
    let msg = "";
    try {
      await loadScenario(join(dir, "bad.json"));
    } catch (e) {
      msg = (e as Error).message;
    }
    ok(/bad\.json: model\.config: cannot read model config .*missing\.json/.test(msg), msg);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseScenario: errors name the bad field and what was expected", () => {
  const cases: [(j: Record<string, unknown>) => void, RegExp][] = [
    [
      (j) => ((j.devices as Record<string, unknown>[])[3].pmax_w = -1),
      /^devices\[3\]\.pmax_w: expected a positive number, got -1$/,
    ],
    [(j) => delete j.bandwidth_hz, /^bandwidth_hz: expected a positive number, got undefined$/],
    [(j) => (j.gamma_max = 1.5), /^gamma_max: expected a number in \(0, 1\)/],
    [
      (j) => ((j.devices as Record<string, unknown>[])[1].samples = 10.5),
      /^devices\[1\]\.samples: expected a positive integer/,
    ],
    [
      (j) => delete (j.devices as Record<string, unknown>[])[0].distance_m,
      /^devices\[0\]\.distance_m: missing/,
    ],
    [
      (j) => ((j.devices as Record<string, unknown>[])[2].gain = 1e-9),
      /^devices\[2\]: give either gain or distance_m/,
    ],
    [
      (j) => ((j.bound as Record<string, unknown>).delta = "0.05"),
      /^bound\.delta: expected a positive number/,
    ],
    [(j) => (j.devices = []), /^devices: expected a non-empty array/],
    [(j) => delete j.adapter_params, /^adapter_params: missing/],
    [(j) => (j.model = { config: "x.json" }), /^model: give either model or adapter_params/],
    [(j) => (j.rayleigh_fading = "yes"), /^rayleigh_fading: expected true or false/],
  ];
  for (const [edit, re] of cases) {
    const j = baseJson();
    edit(j);
    throws(() => parseScenario(j), (e: Error) => re.test(e.message) || assertFail(e.message, re));
  }
  throws(() => parseScenario([1, 2]), /scenario: expected a JSON object/);
});

Deno.test("parseScenario: units and channel gains", () => {
  const sc = parseScenario(baseJson());
  // PL(1 km) = 128.1 dB; N0 at -174 dBm/Hz
  ok(Math.abs(gainFromDistance(1000) / Math.pow(10, -12.81) - 1) < 1e-12);
  ok(Math.abs(dbmToWatts(-174) / 3.981071705534969e-21 - 1) < 1e-12);
  strictEqual(sc.noiseWPerHz, dbmToWatts(-174));
  strictEqual(sc.devices[0].gain, gainFromDistance(sc.devices[0].distanceM!));
  // Rayleigh fading is seeded: same seed same gains, and it changes them
  const j = baseJson();
  j.rayleigh_fading = true;
  const a = parseScenario(j), b = parseScenario(j);
  deepStrictEqual(a.devices.map((d) => d.gain), b.devices.map((d) => d.gain));
  ok(a.devices.some((d, k) => d.gain !== sc.devices[k].gain));
});

Deno.test("default scenario file: K = 10, drawn from its seed as documented, roberta-large sizes", async () => {
  const path = new URL("../opt/scenarios/default.json", import.meta.url).pathname;
  const sc = await loadScenario(path);
  strictEqual(sc.devices.length, 10);
  strictEqual(sc.adapterParams, 786432);
  strictEqual(sc.headParams, 1051650);
  deepStrictEqual(JSON.parse(await Deno.readTextFile(path)), drawScenarioJson(10, 0));
  for (const d of sc.devices) {
    ok(d.samples >= 500 && d.samples < 1500);
    ok(d.distanceM! > 50 && d.distanceM! < 500);
    ok(d.energyBudgetJ >= 900 && d.energyBudgetJ <= 1800);
  }
});
