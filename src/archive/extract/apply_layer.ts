// PLACEHOLDER (owned by the extract work): replaced by the real implementation.
import type { ApplyLayerOptions, LayerDirs, TarSource } from "../layer.ts";

/** Extracts an OCI layer tar into `layer.dir`, converting whiteouts; returns the applied size. */
export function applyLayerTar(
  _layer: LayerDirs,
  _tar: TarSource,
  _options?: ApplyLayerOptions,
): Promise<number> {
  throw new Error("applyLayerTar: not implemented yet");
}
