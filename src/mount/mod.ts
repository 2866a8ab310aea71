/**
 * Performing mount plans: the only code that mounts. Plans are plain data
 * ({@link MountPlan}); {@link performMountPlan} executes and verifies one;
 * a {@link Mounter} is what the store calls (in-process as root, or the
 * privileged helper's).
 *
 * @module
 */

export type {
  AufsMountPlan,
  BindMountPlan,
  MountCall,
  MountPlan,
  NoMountPlan,
  OverlayMountPlan,
} from "./plan.ts";
export { directMounter, type Mounter } from "./mounter.ts";
export { helperMounter, splitCommand } from "./helper_mounter.ts";
export {
  type LegacyOverlayCall,
  legacyOverlayCall,
  mismatch,
  type OverlayDirFds,
  PAGE_SIZE,
  performMountPlan,
  type PerformOptions,
  performOverlayPlan,
  unmountTarget,
} from "./perform.ts";
export {
  mountAt,
  type MountInfoEntry,
  overlayLayers,
  parseMountInfo,
  readMountInfo,
  readMountInfoSync,
} from "./mountinfo.ts";
