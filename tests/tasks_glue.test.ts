import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import {
  DEFAULT_DATA_DIR,
  glueDataDir,
  type GlueExample,
  glueSplitPath,
  parseGlueTsv,
  readGlueSplit,
  SHARED_DATA_DIR,
} from "../tasks/glue.ts";
import { GLUE_TASK_NAMES, GLUE_TASKS, glueSplitLayout, glueTask, isGlueTaskName } from "../tasks/registry.ts";

function hasDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

const SHARED = hasDir(SHARED_DATA_DIR);
const NO_SHARED = `skipped: full GLUE files not found at ${SHARED_DATA_DIR}`;

function labelCounts(rows: GlueExample[]): Record<number, number> {
  const c: Record<number, number> = {};
  for (const r of rows) c[r.label] = (c[r.label] ?? 0) + 1;
  return c;
}

/** Asserts that `f` throws an Error whose message contains every one of `parts`. */
function throwsWith(f: () => unknown, parts: string[]): void {
  throws(f, (e: unknown) => {
    ok(e instanceof Error, "expected an Error");
    for (const p of parts) ok(e.message.includes(p), `message "${e.message}" should contain "${p}"`);
    return true;
  });
}

// ---------------------------------------------------------------- registry

Deno.test("glue registry: every task resolves, has train and dev, and a consistent label set", () => {
  deepStrictEqual([...GLUE_TASK_NAMES], [
    "cola",
    "sst2",
    "mrpc",
    "stsb",
    "qnli",
    "rte",
    "qqp",
    "mnli",
    "wnli",
  ]);
  for (const name of GLUE_TASK_NAMES) {
    const t = glueTask(name);
    strictEqual(t.name, name);
    ok(t.splits.train && t.splits.dev, `${name} has train and dev`);
    ok(t.metrics.includes(t.mainMetric), `${name} main metric is reported`);
    if (t.regression) {
      strictEqual(t.numLabels, 1);
      strictEqual(t.labelValues.length, 0);
    } else {
      strictEqual(t.labelValues.length, t.numLabels, name);
      strictEqual(t.labelNames.length, t.numLabels, name);
    }
  }
  strictEqual(glueTask("cola").mainMetric, "mcc");
  strictEqual(glueTask("mrpc").mainMetric, "accuracy");
  ok(glueTask("mrpc").metrics.includes("f1"));
  ok(glueTask("qqp").metrics.includes("f1"));
  deepStrictEqual([...glueTask("stsb").metrics], ["pearson", "spearman"]);
  deepStrictEqual([...glueTask("rte").labelValues], ["entailment", "not_entailment"]);
  deepStrictEqual([...glueTask("qnli").labelValues], ["entailment", "not_entailment"]);
  deepStrictEqual([...glueTask("mnli").labelValues], ["entailment", "neutral", "contradiction"]);
  deepStrictEqual([...glueTask("wnli").labelNames], ["not_entailment", "entailment"]);
  strictEqual(glueSplitLayout(glueTask("mnli"), "dev").file, "dev_matched.tsv");
  strictEqual(glueSplitLayout(glueTask("mnli"), "dev_mismatched").file, "dev_mismatched.tsv");
  strictEqual(Object.keys(GLUE_TASKS).length, 9);
});

Deno.test("glue registry: unknown task or split is an error listing the known ones", () => {
  ok(!isGlueTaskName("SST-2"));
  ok(!isGlueTaskName("toString"));
  throwsWith(() => glueTask("sst-2"), ['"sst-2"', "cola, sst2, mrpc, stsb, qnli, rte, qqp, mnli, wnli"]);
  throwsWith(() => glueTask("constructor"), ["unknown GLUE task"]);
  throwsWith(() => glueSplitLayout(glueTask("rte"), "dev_mismatched"), ["rte", "train, dev"]);
  throwsWith(() => glueSplitLayout(glueTask("rte"), "test"), ['"test"']);
  strictEqual(glueSplitPath("/x/glue", "sst2", "dev"), "/x/glue/SST-2/dev.tsv");
  strictEqual(glueSplitPath("/x/glue/", "mnli", "dev_mismatched"), "/x/glue/MNLI/dev_mismatched.tsv");
});

// ---------------------------------------------------------------- parsing (synthetic files)

Deno.test("parseGlueTsv: single-sentence and pair tasks, labels mapped per task", () => {
  const sst = parseGlueTsv("sentence\tlabel\ngreat fun \t1\ndull\t0\n", "sst2", "train", "S.tsv");
  deepStrictEqual(sst, [{ idx: 0, a: "great fun ", label: 1 }, { idx: 1, a: "dull", label: 0 }]);

  const cola = parseGlueTsv("gj04\t1\t\tThe sail.\ngj04\t0\t*\tSail the.", "cola", "dev", "C.tsv");
  deepStrictEqual(cola, [{ idx: 0, a: "The sail.", label: 1 }, { idx: 1, a: "Sail the.", label: 0 }]);

  const rte = parseGlueTsv(
    "index\tsentence1\tsentence2\tlabel\n0\tp0\th0\tnot_entailment\n1\tp1\th1\tentailment\n",
    "rte",
    "dev",
    "R.tsv",
  );
  deepStrictEqual(rte, [{ idx: 0, a: "p0", b: "h0", label: 1 }, { idx: 1, a: "p1", b: "h1", label: 0 }]);

  const qnli = parseGlueTsv(
    "index\tquestion\tsentence\tlabel\n7\tq?\ts.\tentailment\n",
    "qnli",
    "dev",
    "Q.tsv",
  );
  deepStrictEqual(qnli, [{ idx: 0, a: "q?", b: "s.", label: 0 }]);

  const mrpc = parseGlueTsv(
    "\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t11\t12\tone\ttwo\n0\t13\t14\tthree\tfour\n",
    "mrpc",
    "train",
    "M.tsv",
  );
  deepStrictEqual(mrpc, [{ idx: 0, a: "one", b: "two", label: 1 }, {
    idx: 1,
    a: "three",
    b: "four",
    label: 0,
  }]);

  const stsHead = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
  const sts = parseGlueTsv(
    stsHead +
      "0\tg\tf\ty\t1\tnone\tnone\tA plane.\tAn air plane.\t5.000\n1\tg\tf\ty\t2\tnone\tnone\tx\ty\t0.25\n",
    "stsb",
    "train",
    "B.tsv",
  );
  deepStrictEqual(sts, [{ idx: 0, a: "A plane.", b: "An air plane.", label: 5 }, {
    idx: 1,
    a: "x",
    b: "y",
    label: 0.25,
  }]);

  const qqp = parseGlueTsv(
    "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n5\t1\t2\tHow?\tWhy?\t0\n6\t3\t4\tA?\tA?\t1\n",
    "qqp",
    "dev",
    "P.tsv",
  );
  deepStrictEqual(qqp, [{ idx: 0, a: "How?", b: "Why?", label: 0 }, { idx: 1, a: "A?", b: "A?", label: 1 }]);

  const wnli = parseGlueTsv("index\tsentence1\tsentence2\tlabel\n0\ts1\ts2\t1\n", "wnli", "train", "W.tsv");
  deepStrictEqual(wnli, [{ idx: 0, a: "s1", b: "s2", label: 1 }]);
});

Deno.test("parseGlueTsv: MNLI columns are found by header name (12-column train, 16-column dev)", () => {
  const trainHead = [
    "index",
    "promptID",
    "pairID",
    "genre",
    "sentence1_binary_parse",
    "sentence2_binary_parse",
    "sentence1_parse",
    "sentence2_parse",
    "sentence1",
    "sentence2",
    "label1",
    "gold_label",
  ];
  const trainRow = [
    "0",
    "31193",
    "31193n",
    "government",
    "( ( a ) )",
    "( b )",
    "(ROOT a)",
    "(ROOT b)",
    "A.",
    "B.",
  ];
  const train = parseGlueTsv(
    [trainHead, [...trainRow, "neutral", "neutral"], [...trainRow, "contradiction", "contradiction"]]
      .map((r) => r.join("\t")).join("\n") + "\n",
    "mnli",
    "train",
    "MNLI/train.tsv",
  );
  deepStrictEqual(train.map((e) => [e.a, e.b, e.label]), [["A.", "B.", 1], ["A.", "B.", 2]]);

  const devHead = [...trainHead.slice(0, 11), "label2", "label3", "label4", "label5", "gold_label"];
  // label1 says neutral but gold_label (the last column) says entailment: the reader must use gold_label.
  const devRow = [...trainRow, "neutral", "entailment", "entailment", "entailment", "neutral", "entailment"];
  for (const split of ["dev", "dev_mismatched"]) {
    const dev = parseGlueTsv(
      [devHead, devRow].map((r) => r.join("\t")).join("\n"),
      "mnli",
      split,
      `MNLI/${split}.tsv`,
    );
    deepStrictEqual(dev, [{ idx: 0, a: "A.", b: "B.", label: 0 }]);
  }
  // A 12-column file given as the dev split is rejected at the header.
  throwsWith(
    () =>
      parseGlueTsv(
        [trainHead, [...trainRow, "neutral", "neutral"]].map((r) => r.join("\t")).join("\n"),
        "mnli",
        "dev",
        "D.tsv",
      ),
    ["D.tsv:1", "12", "16"],
  );
});

Deno.test("parseGlueTsv: CRLF, missing final newline and unclosed quotes", () => {
  const lf = 'index\tsentence1\tsentence2\tlabel\n0\t"He said\tit.\tentailment\n1\tb\tc\tnot_entailment\n';
  const want = [{ idx: 0, a: '"He said', b: "it.", label: 0 }, { idx: 1, a: "b", b: "c", label: 1 }];
  deepStrictEqual(parseGlueTsv(lf, "rte", "train", "r.tsv"), want);
  deepStrictEqual(parseGlueTsv(lf.replaceAll("\n", "\r\n"), "rte", "train", "r.tsv"), want);
  deepStrictEqual(parseGlueTsv(lf.slice(0, -1), "rte", "train", "r.tsv"), want);
  deepStrictEqual(parseGlueTsv(lf.replaceAll("\n", "\r\n").slice(0, -2), "rte", "train", "r.tsv"), want);
  // A header-only file is an empty split, not an error.
  deepStrictEqual(parseGlueTsv("sentence\tlabel\n", "sst2", "dev", "s.tsv"), []);
});

Deno.test("parseGlueTsv: malformed rows are errors naming file and 1-based line", () => {
  const head = "index\tsentence1\tsentence2\tlabel\n";
  // Line 3 has a tab missing: 3 columns instead of 4.
  throwsWith(
    () => parseGlueTsv(head + "0\ta\tb\tentailment\n1\ta b\tentailment\n", "rte", "dev", "RTE/dev.tsv"),
    ["RTE/dev.tsv:3", "3 tab-separated columns", "expected 4"],
  );
  // Line 2 has an extra tab.
  throwsWith(
    () => parseGlueTsv(head + "0\ta\tb\tc\tentailment\n", "rte", "dev", "RTE/dev.tsv"),
    ["RTE/dev.tsv:2", "5 tab-separated columns"],
  );
  // A blank line in the middle is a 1-column row.
  throwsWith(
    () => parseGlueTsv(head + "0\ta\tb\tentailment\n\n1\ta\tb\tentailment\n", "rte", "dev", "x.tsv"),
    ["x.tsv:3", "1 tab-separated columns"],
  );
  // Bad label (line 2 of a header-less CoLA file is line 2).
  throwsWith(
    () => parseGlueTsv("gj04\t1\t\tok.\ngj04\t2\t*\tbad.\n", "cola", "train", "CoLA/train.tsv"),
    ["CoLA/train.tsv:2", 'label "2"', '"0", "1"'],
  );
  throwsWith(
    () => parseGlueTsv(head + "0\ta\tb\tneutral\n", "rte", "train", "t.tsv"),
    ["t.tsv:2", '"neutral"', '"entailment", "not_entailment"'],
  );
  // A CoLA file with a header line is rejected at line 1 (its "label" is not 0/1).
  throwsWith(
    () => parseGlueTsv("source\tlabel\tjudgment\tsentence\ngj04\t1\t\tok.\n", "cola", "train", "c.tsv"),
    ["c.tsv:1", 'label "label"'],
  );
  // Unparsable and out-of-range STS-B scores.
  const sts = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
  const row = (s: string) => `0\tg\tf\ty\t1\tnone\tnone\ta\tb\t${s}\n`;
  for (const bad of ["", "abc", "3.0x", "NaN", "Infinity", "5.5", "-0.1", "1,5"]) {
    throwsWith(
      () => parseGlueTsv(sts + row("1.0") + row(bad), "stsb", "dev", "STS-B/dev.tsv"),
      ["STS-B/dev.tsv:3", `score "${bad}"`],
    );
  }
  // Header problems.
  throwsWith(() => parseGlueTsv("", "sst2", "train", "e.tsv"), ["e.tsv", "empty file"]);
  throwsWith(
    () => parseGlueTsv("sentence\tlabelz\nx\t1\n", "sst2", "train", "h.tsv"),
    ["h.tsv:1", 'no column "label"'],
  );
  throwsWith(
    () => parseGlueTsv("index\tsentence1\tlabel\n0\ta\t1\n", "wnli", "train", "w.tsv"),
    ["w.tsv:1", "3 tab-separated columns", "expected 4"],
  );
});

// ---------------------------------------------------------------- files on disk

Deno.test("readGlueSplit: a missing file is a clear error pointing at the GLUE layout and the samples", async () => {
  const dir = await Deno.makeTempDir({ prefix: "glue-missing-" });
  try {
    await rejects(readGlueSplit(dir, "rte", "train"), (e: unknown) => {
      ok(e instanceof Error);
      for (const p of [`${dir}/RTE/train.tsv`, "--data DIR", "<TASK>/{train,dev}.tsv", DEFAULT_DATA_DIR]) {
        ok(e.message.includes(p), `message "${e.message}" should contain "${p}"`);
      }
      return true;
    });
    await rejects(readGlueSplit(dir, "nope", "train"), /unknown GLUE task "nope"/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("glueDataDir: explicit dir wins; shared only when asked and present", () => {
  strictEqual(glueDataDir({ dir: "/some/where" }), "/some/where");
  strictEqual(glueDataDir(), DEFAULT_DATA_DIR);
  strictEqual(glueDataDir({ preferShared: false }), DEFAULT_DATA_DIR);
  strictEqual(glueDataDir({ preferShared: true }), SHARED ? SHARED_DATA_DIR : DEFAULT_DATA_DIR);
  ok(DEFAULT_DATA_DIR.endsWith("/data/glue"), DEFAULT_DATA_DIR);
  ok(hasDir(DEFAULT_DATA_DIR), `${DEFAULT_DATA_DIR} exists`);
});

/** The committed samples: rows and label counts (counted from the files when they were cut). */
const SAMPLES: Record<string, Record<string, { rows: number; labels?: Record<number, number> }>> = {
  cola: { train: { rows: 256, labels: { 1: 171, 0: 85 } }, dev: { rows: 128, labels: { 1: 83, 0: 45 } } },
  sst2: { train: { rows: 256, labels: { 0: 130, 1: 126 } }, dev: { rows: 128, labels: { 1: 67, 0: 61 } } },
  mrpc: { train: { rows: 256, labels: { 1: 183, 0: 73 } }, dev: { rows: 128, labels: { 1: 90, 0: 38 } } },
  stsb: { train: { rows: 256 }, dev: { rows: 128 } },
  qnli: { dev: { rows: 128, labels: { 1: 69, 0: 59 } } },
  rte: { train: { rows: 256, labels: { 1: 132, 0: 124 } }, dev: { rows: 128, labels: { 0: 67, 1: 61 } } },
  wnli: { train: { rows: 256, labels: { 1: 134, 0: 122 } }, dev: { rows: 71, labels: { 0: 40, 1: 31 } } },
};

Deno.test("committed samples in data/glue parse with the expected rows and both labels", async () => {
  for (const [task, splits] of Object.entries(SAMPLES)) {
    for (const [split, want] of Object.entries(splits)) {
      const rows = await readGlueSplit(DEFAULT_DATA_DIR, task, split);
      strictEqual(rows.length, want.rows, `${task} ${split} rows`);
      rows.forEach((r, i) => strictEqual(r.idx, i));
      if (want.labels) deepStrictEqual(labelCounts(rows), want.labels, `${task} ${split} labels`);
      else for (const r of rows) ok(r.label >= 0 && r.label <= 5, `${task} score ${r.label}`);
      const pair = glueTask(task).textColumns.length === 2;
      for (const r of rows) strictEqual(r.b !== undefined, pair, `${task} ${split} row ${r.idx} text fields`);
    }
  }
  // QNLI has no train sample (the full train file was not available): the error says which file is missing.
  await rejects(readGlueSplit(DEFAULT_DATA_DIR, "qnli", "train"), /QNLI\/train\.tsv/);
  const licence = await Deno.readTextFile(`${DEFAULT_DATA_DIR}/STS-B/LICENSE.txt`);
  ok(licence.includes("Share Alike 4.0"), "STS-B licence note copied");
});

Deno.test({
  name: "committed samples are byte-prefixes of the real files ending at a line boundary",
  ignore: !SHARED,
  fn: async () => {
    for (const [task, splits] of Object.entries(SAMPLES)) {
      for (const split of Object.keys(splits)) {
        const sample = await Deno.readFile(glueSplitPath(DEFAULT_DATA_DIR, task, split));
        const full = await Deno.readFile(glueSplitPath(SHARED_DATA_DIR, task, split));
        ok(sample.length > 0 && sample.length <= full.length, `${task} ${split} size`);
        deepStrictEqual(sample, full.subarray(0, sample.length), `${task} ${split} is a prefix`);
        ok(sample.length === full.length || sample[sample.length - 1] === 0x0a, `${task} ${split} line end`);
      }
    }
    const lic = await Deno.readFile(`${DEFAULT_DATA_DIR}/STS-B/LICENSE.txt`);
    deepStrictEqual(lic, await Deno.readFile(`${SHARED_DATA_DIR}/STS-B/LICENSE.txt`));
  },
});
if (!SHARED) console.log(`tasks_glue: ${NO_SHARED}`);

// ---------------------------------------------------------------- the full real files

/** Official GLUE row counts and (where checked) label counts of the files in shared/data/glue. */
const REAL: Record<string, Record<string, { rows: number; labels?: Record<number, number> }>> = {
  cola: {
    train: { rows: 8551, labels: { 1: 6023, 0: 2528 } },
    dev: { rows: 1043, labels: { 1: 721, 0: 322 } },
  },
  sst2: {
    train: { rows: 67349, labels: { 1: 37569, 0: 29780 } },
    dev: { rows: 872, labels: { 1: 444, 0: 428 } },
  },
  mrpc: {
    train: { rows: 3668, labels: { 1: 2474, 0: 1194 } },
    dev: { rows: 408, labels: { 1: 279, 0: 129 } },
  },
  stsb: { train: { rows: 5749 }, dev: { rows: 1500 } },
  qnli: { dev: { rows: 5463, labels: { 1: 2761, 0: 2702 } } },
  rte: {
    train: { rows: 2490, labels: { 0: 1249, 1: 1241 } },
    dev: { rows: 277, labels: { 0: 146, 1: 131 } },
  },
  wnli: { train: { rows: 635 }, dev: { rows: 71 } },
};

Deno.test({
  name: "real GLUE files: official row and label counts, STS-B score means, in a few seconds",
  ignore: !SHARED,
  fn: async () => {
    const t0 = performance.now();
    for (const [task, splits] of Object.entries(REAL)) {
      for (const [split, want] of Object.entries(splits)) {
        const rows = await readGlueSplit(SHARED_DATA_DIR, task, split);
        strictEqual(rows.length, want.rows, `${task} ${split} rows`);
        if (want.labels) deepStrictEqual(labelCounts(rows), want.labels, `${task} ${split} labels`);
        if (task === "stsb") {
          const mean = rows.reduce((s, r) => s + r.label, 0) / rows.length;
          const min = Math.min(...rows.map((r) => r.label)), max = Math.max(...rows.map((r) => r.label));
          // shared/data/README.md: scores 0.0–5.0, means 2.701 (train) and 2.364 (dev).
          ok(Math.abs(mean - (split === "train" ? 2.701 : 2.364)) < 5e-4, `stsb ${split} mean ${mean}`);
          strictEqual(min, 0);
          strictEqual(max, 5);
        }
      }
    }
    const ms = performance.now() - t0;
    ok(ms < 10_000, `reading all real GLUE files took ${ms.toFixed(0)} ms`);
  },
});

Deno.test({
  name: "real GLUE files: rows opening an unclosed quote are read as single rows",
  ignore: !SHARED,
  fn: async () => {
    const qnli = await readGlueSplit(SHARED_DATA_DIR, "qnli", "dev");
    strictEqual(qnli.length, 5463);
    for (const i of [694, 3428, 3479, 3529, 4080]) {
      ok(qnli[i].b!.startsWith('" '), `QNLI dev row ${i}: ${qnli[i].b!.slice(0, 40)}`);
      ok(!qnli[i].b!.includes("\n"), `QNLI dev row ${i} did not swallow a line`);
    }
    strictEqual(qnli[694].a, "Who discovered the Compton Effect?");
    strictEqual(qnli[694].label, 1); // not_entailment
    strictEqual(qnli[3428].label, 0); // entailment
    const rte = await readGlueSplit(SHARED_DATA_DIR, "rte", "train");
    strictEqual(rte.length, 2490);
    ok(rte[2164].a.startsWith("\"That film wasn't too successful"), rte[2164].a.slice(0, 40));
    strictEqual(rte[2164].b, 'The film "WarGames" was shot in 1983.');
    strictEqual(rte[2164].label, 1);
    // CoLA dev has no newline after its last row; the last row is still read.
    const cola = await readGlueSplit(SHARED_DATA_DIR, "cola", "dev");
    const colaText = await Deno.readTextFile(glueSplitPath(SHARED_DATA_DIR, "cola", "dev"));
    ok(!colaText.endsWith("\n"));
    strictEqual(cola[cola.length - 1].a, colaText.slice(colaText.lastIndexOf("\t") + 1));
  },
});
