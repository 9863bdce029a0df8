/**
 * Atomic file writes: write a temporary file next to the target, then rename it over the target, so a reader
 * (or a crash) never sees a half-written file. Also {@link pathExists}, the check that goes with them.
 * @module
 */

let tempCounter = 0;

function tempPathFor(path: string): string {
  return `${path}.tmp-${Deno.pid}-${Date.now()}-${tempCounter++}`;
}

/**
 * Writes `text` (UTF-8) to `path` atomically (temp file in the same directory, then rename).
 *
 * @example
 * ```ts
 * await writeTextAtomic("runs/a/loss.svg", svg);
 * ```
 */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  await writeBytesAtomic(path, new TextEncoder().encode(text));
}

/** Writes `bytes` to `path` atomically (temp file in the same directory, then rename). */
export async function writeBytesAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`writing ${path} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}

/**
 * Whether `path` exists (false only when it is absent; other errors, such as a denied permission, are thrown).
 *
 * @example
 * ```ts
 * if (await pathExists(`${dir}/model.safetensors`)) console.log("cached");
 * ```
 */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
