/**
 * Test helpers for tests that need root (real mounts, chown, mknod).
 *
 * Without root they are skipped with a message saying why, unless
 * LAYERFS_REQUIRE_PRIVILEGED=1 (as CI sets), where they fail instead.
 *
 * @module
 */

/** True when the process runs as root. */
export const isRoot: boolean = Deno.uid() === 0;

/** True when privileged tests must run (CI). */
export const privilegedRequired: boolean =
  Deno.env.get("LAYERFS_REQUIRE_PRIVILEGED") === "1";

/**
 * Registers a test that needs root: runs as root; otherwise fails when
 * LAYERFS_REQUIRE_PRIVILEGED=1, else is ignored with a printed reason.
 */
export function privilegedTest(
  name: string,
  fn: (t: Deno.TestContext) => void | Promise<void>,
): void {
  if (isRoot) {
    Deno.test({ name, fn, sanitizeResources: false, sanitizeOps: false });
  } else if (privilegedRequired) {
    Deno.test(name, () => {
      throw new Error(
        `"${name}" needs root (real mounts) and LAYERFS_REQUIRE_PRIVILEGED=1 forbids skipping it`,
      );
    });
  } else {
    console.warn(`skipping "${name}": needs root (real mounts); run as root`);
    Deno.test({ name, ignore: true, fn });
  }
}

/** A fresh temporary directory, removed (after unmounting anything under it) by the returned disposer. */
export async function tempDir(prefix = "layerfs-test-"): Promise<
  { path: string } & AsyncDisposable
> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await unmountUnder(path);
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** Lazily unmounts every mount point at or below `dir` (deepest first); for test cleanup only. */
export async function unmountUnder(dir: string): Promise<void> {
  const info = await Deno.readTextFile("/proc/self/mountinfo");
  const targets = info.split("\n").map((l) => l.split(" ")[4]).filter((t) =>
    t && (t === dir || t.startsWith(dir + "/"))
  ).map((t) =>
    t.replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))
  );
  targets.sort((a, b) => b.length - a.length);
  for (const t of targets) {
    await new Deno.Command("umount", { args: ["-l", t] }).output();
  }
}
