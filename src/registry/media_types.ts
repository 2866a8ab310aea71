/**
 * The manifest media types a registry serves (OCI image-spec and Docker's
 * image manifest v2, schema 2).
 *
 * @module
 */

/** OCI image manifest. */
export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
/** OCI image index. */
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
/** Docker image manifest v2, schema 2. */
export const DOCKER_MANIFEST =
  "application/vnd.docker.distribution.manifest.v2+json";
/** Docker manifest list. */
export const DOCKER_MANIFEST_LIST =
  "application/vnd.docker.distribution.manifest.list.v2+json";

/** The manifest types layerfs reads, images first. */
export const MANIFEST_TYPES: readonly string[] = [
  OCI_MANIFEST,
  DOCKER_MANIFEST,
  OCI_INDEX,
  DOCKER_MANIFEST_LIST,
];

/** The index (multi-platform) types. */
export const INDEX_TYPES: readonly string[] = [OCI_INDEX, DOCKER_MANIFEST_LIST];

/**
 * Whether `mediaType` is an image index / manifest list.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isIndex, OCI_INDEX } from "./media_types.ts";
 * assert.equal(isIndex(OCI_INDEX), true);
 * ```
 */
export function isIndex(mediaType: string): boolean {
  return INDEX_TYPES.includes(mediaType);
}
