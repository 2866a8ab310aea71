// PLACEHOLDER (owned by the export work): replaced by the real implementation.
import type { Change, LayerDirs } from "../layer.ts";

/** Lists the changes a layer makes to its parents, sorted by path. */
export function layerChanges(_layer: LayerDirs): Promise<Change[]> {
  throw new Error("layerChanges: not implemented yet");
}
