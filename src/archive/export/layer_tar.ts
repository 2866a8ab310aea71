// PLACEHOLDER (owned by the export work): replaced by the real implementation.
import type { LayerDirs, LayerTarOptions } from "../layer.ts";

/** Streams the OCI layer tar of a layer's own changes. */
export function layerTar(
  _layer: LayerDirs,
  _options?: LayerTarOptions,
): ReadableStream<Uint8Array> {
  throw new Error("layerTar: not implemented yet");
}
