/**
 * Tar-split for layers (after vbatts/tar-split, which docker and podman use
 * the same way): while a layer is applied from a tar, a record keeps every
 * byte of it that is not file content (headers, PAX and GNU extension
 * records, padding, the end-of-archive blocks and whatever follows them),
 * plus each regular file's path, size and crc32, and the whole tar's length
 * and sha256. From the record and the layer's files the original tar is
 * rebuilt byte for byte, so an image saved again keeps its DiffIDs and id.
 *
 * - `applyLayerTarRecorded`: apply and record in one pass.
 * - `rebuildLayerTar`: the original tar, checked as it streams.
 *
 * @module
 */

export {
  applyLayerTarRecorded,
  type RecordedApply,
  type RecordedApplyOptions,
} from "./apply_recorded.ts";
export { rebuildLayerTar, type RebuildOptions } from "./rebuild.ts";
export { recordedTarSize } from "./recorded_size.ts";
export type { RecordSummary } from "./_recorder.ts";
