/**
 * Opening a store: the root and its dirs, `layerfs.json` (the backend and
 * its settings, fixed at init), the Mounter the caller chose, and crash
 * recovery. A first open that fails (say, `overlay` asked for without the
 * right to mount) leaves nothing behind.
 *
 * @module
 */

import {
  backendByName,
  type BackendName,
  backendNames,
  isBackendName,
} from "../backends/registry.ts";
import { chooseBackend, probeHost } from "../backends/detect.ts";
import { BackendNotSupported, StoreError } from "../errors.ts";
import { STORE_DIRS, StoreLayout } from "../layout.ts";
import { helperMounter } from "../mount/helper_mounter.ts";
import { directMounter, type Mounter } from "../mount/mounter.ts";
import { StoreContext } from "./_context.ts";
import { FORMAT_VERSION, readConfig, writeConfig } from "./config.ts";
import { withStoreLock } from "./refcounts.ts";
import { Store } from "./store.ts";

/** Options of {@link openStore}. */
export interface OpenStoreOptions {
  /** Store root directory; created if missing. */
  root: string;
  /**
   * Backend for a new store; an existing store keeps the one in layerfs.json
   * and refuses another explicit one.
   * @default {"auto"}
   */
  backend?: BackendName | "auto";
  /**
   * Who mounts. Unprivileged callers pass the helper's Mounter (or `helper`).
   * @default {directMounter} as root; none otherwise (only vfs can run)
   */
  mounter?: Mounter;
  /**
   * Command line of the privileged helper, used when no `mounter` is given
   * and the caller is not root, e.g. `"sudo -n /usr/local/bin/layerfs-helper"`
   * (the CLI passes `$LAYERFS_HELPER` here).
   */
  helper?: string;
}

/**
 * Opens (and on first use initialises) a layer store at `root`. Opening takes
 * the store lock, finishes or sweeps what crashed operations left (see
 * `recovery.ts`) and reconciles mount counts with mountinfo.
 *
 * @throws {BackendNotSupported} when the requested backend is unknown,
 *   cannot run here or differs from the one the store was initialised with.
 * @throws {IncompatibleBackingFs} when the backing filesystem cannot host it.
 * @throws {StoreError} when `root` is not a directory, or layerfs.json is corrupt.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openStore } from "./open.ts";
 * const root = await Deno.makeTempDir();
 * const store = await openStore({ root: `${root}/store`, backend: "vfs" });
 * assert.equal(store.backend, "vfs");
 * store.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function openStore(options: OpenStoreOptions): Promise<Store> {
  const requested = options.backend ?? "auto";
  // Checked here, not by the type alone: the name often comes from a
  // config file or plain JavaScript.
  if (requested !== "auto" && !isBackendName(requested)) {
    throw new BackendNotSupported(
      String(requested),
      `layerfs has no such backend; use one of auto, ${
        backendNames().join(", ")
      }`,
    );
  }
  const isRoot = Deno.uid() === 0;
  const mounter = options.mounter ??
    (isRoot
      ? directMounter
      : options.helper
      ? helperMounter(options.helper)
      : undefined);
  const created = await makeDirs(options.root);
  let layout: StoreLayout | undefined;
  try {
    layout = new StoreLayout(await Deno.realPath(options.root));
    const l = layout;
    await Deno.mkdir(l.run, { recursive: true, mode: 0o700 });
    const { backend, settings, reason } = await withStoreLock(l, async () => {
      const config = await readConfig(l);
      if (config) {
        if (requested !== "auto" && requested !== config.backend) {
          throw new BackendNotSupported(
            requested,
            `the store at ${l.root} was initialised with "${config.backend}" ` +
              `(whiteout formats differ); open it with backend "${config.backend}" or "auto"`,
          );
        }
        return {
          backend: backendByName(config.backend),
          settings: config.userXattr ? { userXattr: true } : {},
          reason: `recorded in layerfs.json${
            config.reason ? ` (${config.reason})` : ""
          }`,
        };
      }
      const choice = chooseBackend(
        requested,
        await probeHost(l.root, mounter !== undefined),
        l.root,
      );
      const backend = backendByName(choice.backend);
      const settings = backend.settingsAtInit(isRoot);
      await writeConfig(l, {
        version: FORMAT_VERSION,
        backend: choice.backend,
        reason: choice.reason,
        ...settings,
      });
      return { backend, settings, reason: choice.reason };
    });
    for (const d of [...STORE_DIRS, ...backend.ownDirs]) {
      await Deno.mkdir(`${l.root}/${d}`, { recursive: true, mode: 0o700 });
    }
    const ctx = new StoreContext(
      l,
      backend,
      settings,
      // Without a mounter only vfs can have been chosen: it never mounts.
      mounter ?? directMounter,
    );
    const store = new Store(ctx, reason);
    await store.recover();
    return store;
  } catch (e) {
    await undoInit(created, layout);
    throw e;
  }
}

/** Creates `root` and missing parents; returns the topmost dir it created, if any. */
async function makeDirs(root: string): Promise<string | undefined> {
  try {
    if (!(await Deno.stat(root)).isDirectory) {
      throw new StoreError(
        `Cannot open a store at ${root}: it is not a directory; give a directory, or a path that does not exist yet, as the root`,
      );
    }
    return undefined;
  } catch (e) {
    if (e instanceof StoreError || !(e instanceof Error)) throw e;
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new StoreError(`Cannot open a store at ${root}: ${e.message}`, {
        cause: e,
      });
    }
  }
  let top: string | undefined;
  let p = root.replace(/\/+$/, "") || "/";
  for (;;) {
    try {
      await Deno.lstat(p);
      break;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      top = p;
      const up = p.slice(0, p.lastIndexOf("/")) || "/";
      if (up === p) break;
      p = up;
    }
  }
  await Deno.mkdir(root, { recursive: true, mode: 0o700 });
  return top;
}

/**
 * A failed open removes what it made: every dir it created, or, for a root
 * that existed, `run/` when no store was initialised there.
 */
async function undoInit(
  created: string | undefined,
  layout: StoreLayout | undefined,
): Promise<void> {
  // A store that another process initialised meanwhile stays.
  if (layout && await readConfig(layout).catch(() => true)) return;
  if (created !== undefined) {
    await Deno.remove(created, { recursive: true }).catch(() => {});
  } else if (layout) {
    // Only what this open made: a root that existed may hold anything else.
    await Deno.remove(`${layout.run}/lock`).catch(() => {});
    await Deno.remove(layout.run).catch(() => {});
  }
}
