/**
 * The OCI distribution client: image references, manifests and blobs of
 * registries, authentication (anonymous, basic, bearer tokens; podman's and
 * docker's auth files), TLS with certs.d CAs, and the pull and push
 * pipelines. Digests, media types and platform selection live in
 * `src/image/` (the registry sits on top of images) and are exported there.
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
 * import { parseReference } from "./mod.ts";
 * import { selectPlatform } from "../image/mod.ts";
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
} from "../image/reference.ts";
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
export { type PulledImage, pullImage, type PullImageOptions } from "./pull.ts";
export {
  type PushedBlob,
  type PushedImage,
  pushImage,
  type PushImageOptions,
  type PushProgress,
} from "./push.ts";
