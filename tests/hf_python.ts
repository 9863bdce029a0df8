/**
 * Test helper: finds a Python that imports torch, transformers and peft (for the tests that compare this project
 * with Hugging Face), and runs a Python script with a JSON request on stdin and a JSON answer on the last line of
 * stdout. Nothing is installed here: `deno task setup-python` creates `.cache/hf-venv` (see
 * tests/python/setup_hf_env.sh).
 *
 * @example
 * ```ts
 * const py = await findHfPython();
 * if (!py) console.log(hfSkipMessage("hf_interop"));
 * else console.log(await runHfPython(py, HF_SCRIPT, ["build"], { cases: [] }));
 * ```
 * @module
 */

/** Folder of the Python scripts used by the tests. */
export const PYTHON_SCRIPTS_DIR = new URL("./python/", import.meta.url).pathname;

/** The repository's venv created by `deno task setup-python`. */
export const HF_VENV_PYTHON = new URL("../.cache/hf-venv/bin/python", import.meta.url).pathname;

/** The pythons tried, in order: `$FEDLODROP_PYTHON`, the repository's venv, `python3` on PATH, `/usr/bin/python3`. */
export function hfPythonCandidates(): string[] {
  const out: string[] = [];
  const fromEnv = Deno.env.get("FEDLODROP_PYTHON");
  if (fromEnv) out.push(fromEnv);
  out.push(HF_VENV_PYTHON, "python3", "/usr/bin/python3");
  return out;
}

/** Environment of every Python run: offline (nothing may be downloaded) and one thread (the CI has 2 cores). */
const PY_ENV = {
  HF_HUB_OFFLINE: "1",
  TRANSFORMERS_OFFLINE: "1",
  OMP_NUM_THREADS: "1",
  TOKENIZERS_PARALLELISM: "false",
  PYTHONDONTWRITEBYTECODE: "1",
};

/** Runs `python args…` and says whether it exited with 0; a missing executable counts as a failure. */
async function succeeds(python: string, args: string[]): Promise<boolean> {
  try {
    const r = await new Deno.Command(python, { args, env: PY_ENV, stdout: "null", stderr: "null" }).output();
    return r.success;
  } catch {
    return false; // no such executable
  }
}

const HAS_SPECS = "import importlib.util as u, sys; " +
  "sys.exit(0 if all(u.find_spec(m) for m in ('torch', 'transformers', 'peft')) else 1)";

let found: Promise<string | null> | undefined;

/**
 * The first of {@link hfPythonCandidates} that imports torch, transformers and peft, or null. A cheap look-up of
 * the three packages filters the candidates first, so only a likely one pays for the real import (~3 s). The
 * answer is computed once per process.
 */
export function findHfPython(): Promise<string | null> {
  found ??= (async () => {
    for (const py of hfPythonCandidates()) {
      if (!await succeeds(py, ["-c", HAS_SPECS])) continue;
      if (await succeeds(py, ["-c", "import torch, transformers, peft"])) return py;
    }
    return null;
  })();
  return found;
}

/** The one-line message of a test skipped because {@link findHfPython} found nothing. */
export function hfSkipMessage(what: string): string {
  return `${what}: skipped: no python imports torch, transformers and peft (tried ${
    hfPythonCandidates().join(", ")
  }); run \`deno task setup-python\` to create .cache/hf-venv, or set FEDLODROP_PYTHON`;
}

/**
 * Runs `python script args…` with `request` as JSON on stdin and returns the JSON value printed on the last line
 * of stdout (earlier lines and stderr are free for warnings). Throws with the script's stderr when it fails or
 * prints no JSON.
 */
export async function runHfPython(
  python: string,
  script: string,
  args: string[],
  request: unknown,
): Promise<unknown> {
  const proc = new Deno.Command(python, {
    args: [script, ...args],
    env: PY_ENV,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = proc.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(request)));
  await w.close();
  const res = await proc.output();
  const out = new TextDecoder().decode(res.stdout).trim();
  const err = new TextDecoder().decode(res.stderr);
  if (!res.success) {
    throw new Error(`${python} ${script} ${args.join(" ")} failed (code ${res.code}):\n${err}`);
  }
  const last = out.split("\n").pop() ?? "";
  try {
    return JSON.parse(last);
  } catch {
    throw new Error(
      `${python} ${script} ${args.join(" ")} printed no JSON on its last line:\n${out}\n${err}`,
    );
  }
}
