// PLACEHOLDER (owned by the export work): replaced by the real implementation.
import type { LayerDirs } from "../layer.ts";

/** Bytes of regular files in a layer's own content, hardlinks counted once. */
export function layerDiffSize(_layer: LayerDirs): Promise<number> {
  throw new Error("layerDiffSize: not implemented yet");
}
