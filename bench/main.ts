/**
 * `deno task bench`: runs every benchmark and prints ratios to baselines
 * measured in the same run (GNU tar for archives, a 1-layer mount for get).
 * `deno task bench shapes` runs only the per-process layer-shape benchmark,
 * `deno task bench registry` only the pull benchmark (layerfs vs podman).
 *
 * @module
 */

import { runStoreBench } from "./store_bench.ts";
import { runArchiveBench } from "./archive_bench.ts";
import { runImagesBench } from "./images_bench.ts";
import { runShapesBench } from "./shapes_bench.ts";
import { runRegistryBench } from "./registry_bench.ts";

const only = Deno.args[0];
if (!only || only === "store") await runStoreBench();
if (!only || only === "archive") await runArchiveBench();
if (!only || only === "images") await runImagesBench();
if (!only || only === "shapes") await runShapesBench();
if (!only || only === "registry") await runRegistryBench();
