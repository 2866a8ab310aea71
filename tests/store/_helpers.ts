/**
 * Helpers for the store tests: describe a tree as data, make whiteouts in a
 * layer's own dir in the backend's format (the archive code is not needed),
 * and list what is mounted under a directory.
 *
 * @module
 */

import { backendByName } from "../../src/backends/registry.ts";
import { readMountInfo } from "../../src/mount/mountinfo.ts";
import { cstr, libc } from "../../src/sys/libc_linux.ts";
import type { Store } from "../../mod.ts";

/** One path of a tree as the tests compare it. */
export interface Entry {
  kind: "file" | "dir" | "symlink" | "other";
  mode: number;
  uid: number;
  gid: number;
  content: string;
}

/** `root`'s tree as a sorted path -> entry map (test-made paths only). */
export async function describe(root: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  async function walk(rel: string): Promise<void> {
    const names: string[] = [];
    for await (const e of Deno.readDir(root + rel)) names.push(e.name);
    for (const name of names.sort()) {
      const p = `${rel}/${name}`;
      const st = await Deno.lstat(root + p);
      const base = { mode: st.mode! & 0o7777, uid: st.uid!, gid: st.gid! };
      if (st.isSymlink) {
        out.set(p, {
          kind: "symlink",
          ...base,
          content: await Deno.readLink(root + p),
        });
      } else if (st.isDirectory) {
        out.set(p, { kind: "dir", ...base, content: "" });
        await walk(p);
      } else if (st.isFile) {
        out.set(p, {
          kind: "file",
          ...base,
          content: await Deno.readTextFile(root + p),
        });
      } else out.set(p, { kind: "other", ...base, content: "" });
    }
  }
  await walk("");
  return out;
}

/**
 * Deletes `name` (a path inside the layer) in layer `id`'s own dir, the way
 * the backend's whiteout format stores deletions: overlay a 0/0 character
 * device (needs root), aufs a `.wh.<name>` file, vfs simply removing it from
 * the layer's full copy.
 */
export async function whiteout(
  store: Store,
  id: string,
  name: string,
): Promise<void> {
  const dir = (await store.metadata(id)).diff;
  const path = `${dir}/${name}`;
  const format = backendByName(store.backend).whiteoutFormat;
  if (format === "overlay") {
    const S_IFCHR = 0o020000;
    const AT_FDCWD = -100;
    const rc = libc().mknodat(AT_FDCWD, cstr(path), S_IFCHR, 0n);
    if (rc !== 0) throw new Error(`mknodat ${path} failed`);
  } else if (format === "aufs") {
    const slash = name.lastIndexOf("/");
    await Deno.writeTextFile(
      `${dir}/${name.slice(0, slash + 1)}.wh.${name.slice(slash + 1)}`,
      "",
    );
  } else {
    await Deno.remove(path, { recursive: true });
  }
}

/** Mount points at or below `dir` in this mount namespace. */
export async function mountsUnder(dir: string): Promise<string[]> {
  return (await readMountInfo()).map((m) => m.mountPoint)
    .filter((t) => t === dir || t.startsWith(dir + "/"));
}

/**
 * Writes a file with an exact mode, and owner when given (chown to another
 * user needs root; without `uid` the file belongs to whoever runs the test).
 */
export async function put(
  path: string,
  text: string,
  mode = 0o644,
  uid?: number,
  gid?: number,
): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, text);
  if (uid !== undefined) await Deno.chown(path, uid, gid ?? uid);
  await Deno.chmod(path, mode);
}
