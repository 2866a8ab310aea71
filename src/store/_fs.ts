/**
 * Internal: the store's deletes, which never cross into a mount. A vfs
 * layer used as a rootfs may have /proc or a host volume bound inside it,
 * and a recursive delete would walk in and delete the mounted files.
 *
 * @module
 */

import { StoreError } from "../errors.ts";
import { type MountInfoEntry, readMountInfo } from "../mount/mountinfo.ts";

/** Throws StoreError (saying what to unmount) when something is mounted at or below `dir`. */
export function mountInside(
  info: MountInfoEntry[],
  dir: string,
  action: string,
): Promise<void> {
  const inside = info.find((m) =>
    m.mountPoint === dir || m.mountPoint.startsWith(`${dir}/`)
  );
  if (inside) {
    return Promise.reject(
      new StoreError(
        `Cannot ${action}: ${inside.mountPoint} is mounted inside ${dir}; ` +
          `unmount it (umount ${inside.mountPoint}) and retry`,
      ),
    );
  }
  return Promise.resolve();
}

/** Deletes `path` (recursively if asked); absent is fine; refuses a mount inside. */
export async function removeIfPresent(
  path: string,
  recursive: boolean,
): Promise<void> {
  if (recursive) {
    await mountInside(await readMountInfo(), path, `delete ${path}`);
  }
  try {
    await Deno.remove(path, { recursive });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** rmdir: an empty mount point; absent is fine. */
export async function rmdirIfPresent(path: string): Promise<void> {
  await removeIfPresent(path, false);
}
