/**
 * The backends by name.
 *
 * @module
 */

import { aufsBackend } from "./aufs.ts";
import { overlayBackend } from "./overlay.ts";
import type { Backend, BackendName } from "./types.ts";
import { vfsBackend } from "./vfs.ts";

/**
 * The backend called `name`.
 *
 * @example
 * ```ts
 * import { backendByName } from "./registry.ts";
 * console.log(backendByName("vfs").whiteoutFormat); // vfs
 * ```
 */
export function backendByName(name: BackendName): Backend {
  switch (name) {
    case "overlay":
      return overlayBackend;
    case "aufs":
      return aufsBackend;
    case "vfs":
      return vfsBackend;
  }
}
