/**
 * What a user's tool does, as its own process (start-up included): imports
 * the public module and applies one tar into a directory, or packs one
 * directory into a file. Run by shapes_bench.ts:
 *
 *   deno run -A bench/_shape_child.ts apply <tar> <dir>
 *   deno run -A bench/_shape_child.ts pack <dir> <out.tar>
 *   deno run -A bench/_shape_child.ts changes <dir> <parent-dir>
 *
 * @module
 */

import { applyTar, packDir, writeToFile } from "../mod.ts";

const [mode, a, b] = Deno.args;
if (mode === "apply") {
  using f = await Deno.open(a);
  await applyTar(b, f, { format: "none" });
} else if (mode === "pack") {
  using o = await Deno.open(b, { create: true, write: true, truncate: true });
  await writeToFile(packDir(a), o);
} else if (mode === "changes") {
  // Two full trees (vfs), as moby's ChangesDirs compares them. Imported here
  // by a computed URL, not at the top nor by a literal `import()` (which Deno
  // follows at start-up, src/_load_module.ts): apply and pack runs must load
  // only what mod.ts loads.
  // The module Store.changes loads.
  const changes = new URL(
    "../src/archive/changes/layer_changes.ts",
    import.meta.url,
  ).href;
  const { layerChanges } = await import(
    changes
  ) as typeof import("../src/archive/changes/layer_changes.ts");
  const n = (await layerChanges({ dir: a, format: "vfs", parentDirs: [b] }))
    .length;
  console.log(n);
} else if (mode !== "noop") {
  throw new Error(`usage: _shape_child.ts apply|pack|changes|noop ...`);
}
