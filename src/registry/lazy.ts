/**
 * The pull and push entry points as `mod.ts` exports them, each loading its
 * implementation on first call.
 *
 * Why: `pull.ts` and `push.ts` bring the image formats, the image store and
 * the compressors with them (~0.6 MB of emitted code: ~15 ms of every start
 * on the 2-core VM, README "Start-up", whether or not the process ever
 * pulls). Both are async, so the `import()` changes nothing for callers; the
 * full documentation stays with each implementation. `RegistryClient` (a
 * class) and the reference, auth-file and TLS helpers stay static.
 *
 * @module
 */

import type { Store } from "../store/store.ts";
import type { PulledImage, PullImageOptions } from "./pull.ts";
import type { PushedImage, PushImageOptions } from "./push.ts";
import type { Reference } from "../image/reference.ts";
import { loadModule } from "../_load_module.ts";

const pullImpl = () =>
  loadModule<typeof import("./pull.ts")>(
    new URL("./pull.ts", import.meta.url),
  );
const pushImpl = () =>
  loadModule<typeof import("./push.ts")>(
    new URL("./push.ts", import.meta.url),
  );

/**
 * Pulls an image into the store under its reference (see
 * `src/registry/pull.ts`: platforms, verification, credentials, TLS).
 *
 * @param store An open store.
 * @param ref `host/repository[:tag][@digest]` (docker's normalisation applies).
 * @param options Platform, parallelism, client, progress, signal.
 * @returns The image's names, id and layers.
 * @throws {InvalidReference} {RegistryNotFound} {RegistryUnauthorized} {RegistryError}
 * @throws {DigestMismatch} {InvalidImage} {ForeignLayer} {NoMatchingPlatform}
 *
 * @example A malformed reference is refused before any connection
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidReference, openStore, pullImage } from "../../mod.ts";
 *
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await assert.rejects(pullImage(store, "Bad Name:1"), InvalidReference);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function pullImage(
  store: Store,
  ref: string | Reference,
  options?: PullImageOptions,
): Promise<PulledImage> {
  return (await pullImpl()).pullImage(store, ref, options);
}

/**
 * Pushes an image of the store to `ref` (see `src/registry/push.ts`:
 * compression, blob mounts, chunked uploads).
 *
 * @param store An open store.
 * @param ref The destination, `host/repository[:tag]`.
 * @param options Which local image, compression, chunking, client, progress.
 * @returns The manifest's digest, the pushed id, each blob and how it went.
 * @throws {ImageNotFound} {InvalidReference} {RegistryUnauthorized} {RegistryError} {DigestMismatch}
 *
 * @example A malformed reference is refused before any connection
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidReference, openStore, pushImage } from "../../mod.ts";
 *
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root, backend: "vfs" });
 * await assert.rejects(pushImage(store, "Bad Name:1"), InvalidReference);
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function pushImage(
  store: Store,
  ref: string | Reference,
  options?: PushImageOptions,
): Promise<PushedImage> {
  return (await pushImpl()).pushImage(store, ref, options);
}
