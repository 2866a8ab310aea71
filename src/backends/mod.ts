/**
 * Backends: overlay, aufs and vfs. Each names its whiteout format and turns a
 * layer's chain into a MountPlan with a pure function; {@link planLayerMount}
 * re-plans a layer from the store's own metadata (what the privileged helper
 * uses); {@link chooseBackend} is the `auto` rule.
 *
 * @module
 */

export type { Backend, BackendName, LayerMountInput } from "./types.ts";
export { overlayBackend, planOverlayMount } from "./overlay.ts";
export { aufsBackend, type AufsPlanOptions, planAufsMount } from "./aufs.ts";
export { planVfsMount, vfsBackend } from "./vfs.ts";
export { backendByName } from "./registry.ts";
export {
  type BackendChoice,
  chooseBackend,
  type HostProbe,
  probeHost,
} from "./detect.ts";
export { planLayerMount } from "./plan_from_disk.ts";
