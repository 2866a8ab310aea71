/**
 * layerfs's own tar codec (ustar + PAX + GNU long names), written because no
 * npm tar library keeps binary `SCHILY.xattr.*` values intact.
 *
 * - {@link TarReader}: fast pull reader (header, then body chunks as views).
 * - {@link readTar}: async iterable of entries with streaming bodies.
 * - {@link TarWriter}: streaming writer with backpressure, ~1 MiB output chunks.
 * - {@link encodeHeader}, {@link encodeHeaderInto}, {@link paddingFor},
 *   {@link END_OF_ARCHIVE}: the raw pieces, for writers with their own batching.
 *
 * @example Round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { readTar, TarWriter } from "./mod.ts";
 * const w = new TarWriter();
 * const bytes = new Response(w.readable).bytes();
 * await w.add({
 *   name: "motd", type: "file", size: 3, mode: 0o644, uid: 0, gid: 0,
 *   uname: "", gname: "", mtime: 0, mtimeNsec: 0, linkname: "",
 *   devmajor: 0, devminor: 0, xattrs: new Map([["user.k", new Uint8Array([0, 255])]]),
 * }, new TextEncoder().encode("hi\n"));
 * await w.close();
 * for await (const e of readTar(await bytes)) {
 *   assert.deepEqual(e.header.xattrs.get("user.k"), new Uint8Array([0, 255]));
 *   assert.equal(await e.text(), "hi\n");
 * }
 * ```
 *
 * @module
 */

export {
  type EntryType,
  type TarHeader,
  tarHeader,
  type TarHeaderInit,
  TypeFlag,
} from "./header.ts";
export {
  readTar,
  type TarEntry,
  type TarInput,
  TarReader,
  type TarReaderOptions,
} from "./reader.ts";
export {
  encodeHeader,
  encodeHeaderInto,
  END_OF_ARCHIVE,
  paddingFor,
} from "./encode.ts";
export { TarWriter, type TarWriterOptions } from "./writer.ts";
