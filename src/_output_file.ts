/**
 * Internal: where `layerfs diff -o FILE` writes. A regular file (or a new
 * name) is written under a temporary name next to it, fsynced and renamed
 * over it, so a failed or interrupted export never leaves a truncated tar
 * under the name asked for. Anything else that already exists (a fifo, a
 * device such as /dev/null, a socket) is written in place: replacing it with
 * a regular file would break whoever else uses it. A symlink is followed, so
 * the file it points to is what gets written, and the link stays.
 *
 * @module
 */

import { nodePath } from "../_node.ts";
import { UsageError } from "../errors.ts";
import { syncDir } from "../store/_atomic.ts";

/** An open output: write to `file`, then `commit` on success or `abort` on failure. */
export interface Output {
  /** Where to write. */
  file: Deno.FsFile;
  /** Makes the written bytes visible under the name asked for, and closes. */
  commit(): Promise<void>;
  /** Closes and removes what a failed write left (never the target itself). */
  abort(): Promise<void>;
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Resolves a final symlink (chains too); a dangling one is refused. */
async function followLink(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(
        `Cannot write to ${path}: it is a symlink to something that does not exist; ` +
          "pass the target's path or remove the link",
      );
    }
    throw e;
  }
}

/**
 * Opens `path` for an export as described in the module doc.
 *
 * @throws {UsageError} `path` is a directory or a dangling symlink.
 */
export async function openOutput(path: string): Promise<Output> {
  let st = await lstatOrNull(path);
  if (st?.isSymlink) {
    path = await followLink(path);
    st = await Deno.stat(path);
  }
  if (st?.isDirectory) {
    throw new UsageError(
      `Cannot write to ${path}: it is a directory; pass a file name, e.g. ${path}/layer.tar`,
    );
  }
  if (st && !st.isFile) {
    // A fifo, device or socket: in place, as a shell redirection would.
    const file = await Deno.open(path, { write: true });
    return {
      file,
      commit: () => Promise.resolve(file.close()),
      abort: () => Promise.resolve(file.close()),
    };
  }
  const tmp = `${path}.layerfs-${crypto.randomUUID().slice(0, 8)}.tmp`;
  // An existing file keeps its permission bits (less the umask, as for any
  // new file); a new one is 0644.
  const file = await Deno.open(tmp, {
    write: true,
    createNew: true,
    mode: st ? st.mode! & 0o777 : 0o644,
  });
  let closed = false;
  const close = () => {
    if (!closed) file.close();
    closed = true;
  };
  return {
    file,
    async commit() {
      // Data on disk before the name points at it: after a crash the name
      // holds the old file or the whole new one, never a short one.
      await file.syncData();
      close();
      await Deno.rename(tmp, path);
      const { dirname, resolve } = nodePath();
      await syncDir(dirname(resolve(path)));
    },
    async abort() {
      close();
      await Deno.remove(tmp).catch(() => {});
    },
  };
}
