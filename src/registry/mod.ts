/**
 * The OCI distribution client: image references, manifests and blobs of
 * registries, authentication (anonymous, basic, bearer tokens; podman's and
 * docker's auth files), TLS with certs.d CAs, platform selection from an
 * index.
 *
 * ## Vocabulary
 * - **Reference**: `[HOST[:PORT]/]REPO[:TAG][@DIGEST]`; `alpine` is
 *   `docker.io/library/alpine:latest`.
 * - **Manifest**: the JSON document naming an image's config and layers;
 *   an **index** (manifest list) names one manifest per platform.
 * - **Blob**: content in a repository, named by its digest (config, layers).
 * - **Digest**: `sha256:<hex>` of the exact bytes; every byte read is checked
 *   against one.
 *
 * @example Parse a reference and pick a platform from an index
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseReference, selectPlatform } from "./mod.ts";
 * assert.equal(parseReference("user/app:1").toString(), "docker.io/user/app:1");
 * const index = { manifests: [{ digest: "sha256:a", size: 2, platform: { os: "linux", architecture: "amd64" } }] };
 * assert.equal(selectPlatform(index, { os: "linux", architecture: "amd64" }).digest, "sha256:a");
 * ```
 *
 * @module
 */

export {
  DOCKER_HUB,
  hostname,
  parseReference,
  type Reference,
  referenceOf,
} from "./reference.ts";
export { digestOf, parseDigest } from "./digest.ts";
export {
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  INDEX_TYPES,
  isIndex,
  MANIFEST_TYPES,
  OCI_INDEX,
  OCI_MANIFEST,
} from "./media_types.ts";
export {
  formatPlatform,
  hostPlatform,
  type ImageIndex,
  type IndexEntry,
  parsePlatform,
  type Platform,
  selectPlatform,
} from "./platform.ts";
export {
  type AuthFileEnv,
  authFilePath,
  authFilesToRead,
  type Credentials,
  readCredentials,
  removeCredentials,
  storeCredentials,
} from "./auth_file.ts";
export {
  DEFAULT_CERTS_DIRS,
  isLoopback,
  plainHttpAllowed,
  registryCaCerts,
} from "./tls.ts";
export {
  type BlobSource,
  type CallOptions,
  type Manifest,
  type ManifestHead,
  MAX_MANIFEST_SIZE,
  type PushBlobOptions,
  type PushBlobResult,
  RegistryClient,
  type RegistryClientOptions,
  type Repository,
} from "./client.ts";
