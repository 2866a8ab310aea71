/**
 * Backends: overlay, aufs and vfs. Each declares its capabilities and
 * requirements, owns its per-layer entries, names its whiteout format and
 * turns a layer's chain into a MountPlan with a pure function;
 * {@link chooseBackend} is the `auto` rule over the registry.
 *
 * @module
 */

export type {
  Backend,
  BackendCapabilities,
  BackendRequirements,
  BackendSettings,
  LayerMountInput,
} from "./types.ts";
export { overlayBackend, planOverlayMount, shortLinkName } from "./overlay.ts";
export { aufsBackend, type AufsPlanOptions, planAufsMount } from "./aufs.ts";
export { planVfsMount, vfsBackend } from "./vfs.ts";
export {
  backendByName,
  type BackendName,
  backendNames,
  BACKENDS,
  isBackendName,
} from "./registry.ts";
export {
  type BackendChoice,
  chooseBackend,
  type HostProbe,
  probeHost,
} from "./detect.ts";
