/**
 * Crash-safe small-file writes: temp name, fsync, rename, fsync of the
 * directory (containerd's pattern), so a reader sees the old or the new file,
 * never a torn one.
 *
 * @module
 */

/** Writes `text` to `path` atomically and durably. */
export async function writeFileAtomic(
  path: string,
  text: string,
): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || "/";
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const f = await Deno.open(tmp, {
    write: true,
    create: true,
    truncate: true,
    mode: 0o644,
  });
  try {
    await f.write(new TextEncoder().encode(text));
    await f.sync();
  } finally {
    f.close();
  }
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  await syncDir(dir);
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
