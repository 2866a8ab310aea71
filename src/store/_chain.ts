/**
 * Internal: the one store-side hook images need. `applyDiff` publishes as
 * soon as the extractor returns; an image layer must first be checked
 * (the rest of its stream drained and hashed, digests compared), and a
 * failed check must leave nothing behind. So the check runs inside the
 * staging fill, before the publishing rename. Like `applyDiff`, it keeps a
 * tar-split record of the tar (read to its end before the check runs);
 * the record takes the caller's sha256 of the tar when it has one, so an
 * image load hashes its layer tars once.
 *
 * @module
 */

import {
  applyLayerTarRecorded,
  type TarSource,
  type WhiteoutFormat,
} from "../archive/layer.ts";
import { buildLayer } from "./_build.ts";
import type { StoreContext } from "./_context.ts";

/** Options of {@link applyCheckedLayer}. */
export interface CheckedLayerOptions {
  /** Extraction starts before `parent` exists; publishing waits for this. */
  parentReady?: Promise<void>;
  /** The caller's sha256 (hex) of `tar` read to its end, for the record. */
  tarSha256?: () => string;
}

/**
 * Builds read-only layer `id` on `parent` (both validated) from `tar`, then
 * awaits `beforePublish` while the layer is still in staging: when it
 * throws, the staging dir is removed and nothing is published. With
 * `options.parentReady`, extraction starts before `parent` exists (parallel
 * unpack); publishing waits for it. With `options.tarSha256`, the record
 * ends with that digest instead of hashing the tar again.
 *
 * @throws {LayerExists} {ParentNotFound} {ParentNotCommitted} {InvalidArchive}
 *   and whatever `beforePublish` throws.
 */
export async function applyCheckedLayer(
  ctx: StoreContext,
  id: string,
  parent: string | undefined,
  tar: TarSource,
  beforePublish: () => Promise<void>,
  options: CheckedLayerOptions = {},
): Promise<number> {
  const size = await buildLayer(ctx, id, parent, {
    readWrite: false,
    parentReady: options.parentReady,
    fill: async (dirs, record) => {
      // The record reads the tar to its end (the check finds it drained).
      const { size } = await applyLayerTarRecorded(dirs, tar, record, {
        tarSha256: options.tarSha256,
      });
      await beforePublish();
      return size;
    },
  });
  return size!;
}

/**
 * A layer's staging as plain data (it can be posted to a worker): the dirs
 * with the backend's whiteout format by name, and where its tar-split
 * record goes.
 */
export interface StagedLayer {
  /** The staging dir, its parents' dirs and the whiteout format (a `LayerDirs`). */
  dirs: {
    /** The staging `diff` dir to extract into. */
    dir: string;
    /** The parents' `diff/` dirs, nearest first. */
    parentDirs: string[];
    /** The backend's whiteout format. */
    format: WhiteoutFormat;
    /** Overlay opaque markers in `user.overlay.*`. */
    userXattr: boolean;
  };
  /** Where the tar-split record goes (a new file). */
  record: string;
}

/**
 * {@link applyCheckedLayer} for a caller that extracts and checks the tar
 * itself (in a worker): `fill` gets the staging as plain data and returns
 * the applied size; when it throws, nothing is published.
 *
 * @throws {LayerExists} {ParentNotFound} {ParentNotCommitted} and whatever
 *   `fill` throws.
 */
export async function applyStagedLayer(
  ctx: StoreContext,
  id: string,
  parent: string | undefined,
  fill: (staged: StagedLayer) => Promise<number>,
  parentReady?: Promise<void>,
  imageLayer?: boolean,
): Promise<number> {
  const size = await buildLayer(ctx, id, parent, {
    readWrite: false,
    parentReady,
    imageLayer,
    fill: (dirs, record) => fill({ dirs: ctx.plainDirs(dirs), record }),
  });
  return size!;
}
