/**
 * Crash-safe small-file writes: temp name, fsync, rename, fsync of the
 * directory (containerd's pattern), so a reader sees the old or the new file,
 * never a torn one.
 *
 * @module
 */

import { LayerfsError, StoreError } from "../errors.ts";

/**
 * Writes `text` to `path` atomically and (unless `durable: false`) durably:
 * a rename survives a killed process; the fsyncs make it survive a power loss.
 *
 * @throws {StoreError} naming `path` when writing fails (its temp file is removed).
 */
export async function writeFileAtomic(
  path: string,
  text: string,
  options: { durable?: boolean } = {},
): Promise<void> {
  const durable = options.durable ?? true;
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const f = await Deno.open(tmp, {
      write: true,
      createNew: true,
      mode: 0o644,
    });
    try {
      const bytes = new TextEncoder().encode(text);
      for (let off = 0; off < bytes.length;) {
        off += await f.write(bytes.subarray(off));
      }
      if (durable) await f.sync();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    // Every failure (a full disk while writing, fsync, rename) leaves no temp file.
    await Deno.remove(tmp).catch(() => {});
    throw writeError(path, e);
  }
  if (durable) await syncDir(dir);
}

/** A failed write with the file named and what to do (ENOSPC, EFBIG, EIO say so). */
function writeError(path: string, e: unknown): unknown {
  if (e instanceof LayerfsError || !(e instanceof Error)) return e;
  const code = (e as { code?: string }).code;
  const hint = code === "ENOSPC" || /No space left/.test(e.message)
    ? "the filesystem is full: free space and retry"
    : code === "EFBIG" || /too large/i.test(e.message)
    ? "the file size limit was reached (ulimit -f): raise it and retry"
    : code === "EIO"
    ? "the disk reported an I/O error: check it (dmesg) before retrying"
    : "check the permissions and free space of that filesystem";
  return new StoreError(`Cannot write ${path} (${e.message}); ${hint}`, {
    cause: e,
  });
}

/** fsyncs a directory so a rename in it is durable. */
export async function syncDir(dir: string): Promise<void> {
  const d = await Deno.open(dir, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}
