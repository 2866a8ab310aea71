/**
 * Media types of images (OCI image-spec and Docker's image manifest v2,
 * schema 2): manifests, indexes, configs and layers, in one place for the
 * loader, the registry client and the pull and push pipelines.
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

/** OCI image config. */
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
/** Docker image config. */
export const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";

/** The image manifest types (no indexes). */
export const IMAGE_MANIFEST_TYPES: readonly string[] = [
  OCI_MANIFEST,
  DOCKER_MANIFEST,
];

/** The config types. */
export const CONFIG_TYPES: readonly string[] = [OCI_CONFIG, DOCKER_CONFIG];

/** The layer tar types layerfs applies, with the compression each names. */
export const LAYER_TYPES: Readonly<
  Record<string, "none" | "gzip" | "zstd">
> = {
  "application/vnd.oci.image.layer.v1.tar": "none",
  "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
  "application/vnd.docker.image.rootfs.diff.tar": "none",
  "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
  "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
};

/** Non-distributable ("foreign") layer types, which layerfs refuses. */
export const FOREIGN_LAYER =
  /^application\/vnd\.(docker\.image\.rootfs\.foreign\.diff\.tar(\.gzip)?|oci\.image\.layer\.nondistributable\.v1\.tar(\+gzip|\+zstd)?)$/;

/**
 * The layer media type for a compression in an OCI or a Docker manifest.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { layerType } from "./media_types.ts";
 * assert.equal(layerType("gzip", false), "application/vnd.oci.image.layer.v1.tar+gzip");
 * ```
 */
export function layerType(
  compression: "none" | "gzip" | "zstd",
  docker: boolean,
): string {
  const hit = Object.entries(LAYER_TYPES).find(([t, c]) =>
    c === compression && t.includes(".docker.") === docker
  );
  return hit![0];
}
