/**
 * Test helper: the fds of this process that point at `root` or below it,
 * as the paths they point to (sorted). Other tests' and Deno's own fds come
 * and go on their own schedule, so a process-wide fd count is not a stable
 * way to check that code closed what it opened; this is.
 *
 * @module
 */

/** Paths (sorted) of this process's open fds that are `root` or below it. */
export function fdsUnder(root: string): string[] {
  return [...Deno.readDirSync("/proc/self/fd")].flatMap((e) => {
    try {
      const target = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
      return target === root || target.startsWith(`${root}/`) ? [target] : [];
    } catch {
      return []; // the fd readDirSync itself used, closed by now
    }
  }).sort();
}
