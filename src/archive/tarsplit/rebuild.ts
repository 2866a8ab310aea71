/**
 * `rebuildLayerTar`: the tar a layer was applied from, byte for byte, from
 * its tar-split record (see `_format.ts`) and the layer's own files.
 *
 * Segments are copied from the record; each file op is filled from the
 * layer's file at its path, opened below the layer dir with
 * `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` and `O_NOFOLLOW` (no
 * symlink is followed, whatever the layer holds). Whiteouts, hard links and
 * every other header-only entry have no content: their headers come from the
 * record, so an overlay upper dir's 0/0 char devices are never read.
 *
 * Exactness is checked, never assumed: each file must be a regular file of
 * the recorded size with the recorded crc32, and the whole output must have
 * the recorded length and sha256. The first difference errors the stream
 * with {@link LayerNotExact} (naming the file), and the last chunk is only
 * handed out once the sha256 matched, so a consumer that reads to the end
 * without an error has the original tar. What a record cannot see (a mode,
 * owner or xattr changed in place, a file added or removed) is found by
 * ctime before the last chunk (`_changed_since.ts`): every entry's must be
 * no later than the record's, which publishing set after the layer's.
 * tar-split itself does not check these.
 *
 * @module
 */

import { LayerNotExact } from "../../errors.ts";
import {
  AT_FDCWD,
  close,
  O,
  openat,
  openat2,
  read,
  RESOLVE,
} from "../../sys/fd_linux.ts";
import {
  type Ctime,
  ctimeAt,
  fstatx,
  openDirAt,
} from "../../sys/fs_walk_linux.ts";
import { changedSince } from "./_changed_since.ts";
import { decodeRecord, type RecordOp } from "./_format.ts";
import { StreamSums } from "./_sums.ts";

const CHUNK = 1 << 20;

/**
 * {@link changedSince} of the layer dir against the record's ctime, its
 * regular files left out: the rebuild checked each as it opened it.
 */
function layerChangedSince(dirPath: string, since: Ctime): string | null {
  const fd = openDirAt(AT_FDCWD, dirPath);
  try {
    return changedSince(fd, since, true);
  } finally {
    close(fd);
  }
}

const changedAfter = (path: string) =>
  `${path} changed after the layer was applied (a file added or removed, or a mode, owner or xattr changed: its ctime is later than the record's)`;

/** Options of {@link rebuildLayerTar}. */
export interface RebuildOptions {
  /**
   * The sha256 (hex) the tar must have, e.g. an image's DiffID; the record's
   * own digest is checked in any case.
   * @default {undefined}
   */
  sha256?: string;
}

/**
 * Streams the tar recorded in `recordPath` with the file contents taken from
 * `dirPath` (the layer's own dir, `diff/<id>`).
 *
 * @param layer Names the layer in errors.
 * @param recordPath The layer's tar-split record.
 * @param dirPath The layer's dir.
 * @param options The digest expected.
 * @returns The original tar; errors with {@link LayerNotExact} (through the
 *   stream, before its last chunk) when the layer's files or the record
 *   differ from what was applied.
 *
 * @example
 * ```ts ignore
 * import { writeToFile } from "../write_file.ts";
 * using out = await Deno.create("layer.tar");
 * await writeToFile(rebuildLayerTar("app", "/s/tarsplit/app", "/s/diff/app"), out);
 * ```
 */
export function rebuildLayerTar(
  layer: string,
  recordPath: string,
  dirPath: string,
  options: RebuildOptions = {},
): ReadableStream<Uint8Array> {
  let record: Deno.FsFile | undefined;
  // The record's ctime (set when it was published, after the layer's
  // files): a later ctime on any entry means the entry changed since.
  let since: Ctime | undefined;
  let ops: AsyncGenerator<RecordOp> | undefined;
  let dirFd = -1;
  let seg: Uint8Array | null = null;
  let cur: {
    fd: number;
    path: string;
    size: number;
    left: number;
    want: number;
    crc: number;
  } | null = null;
  // Off Node while the tar is small, as when it was recorded (_sums.ts).
  const sums = new StreamSums();
  const notExact = (why: string, cause?: unknown) =>
    new LayerNotExact(layer, why, cause ? { cause } : undefined);
  const cleanup = () => {
    if (cur) close(cur.fd);
    cur = null;
    if (dirFd >= 0) close(dirFd);
    dirFd = -1;
    record?.close();
    record = undefined;
  };
  const openFile = (path: string, size: number, want: number) => {
    let fd: number;
    try {
      fd = openat2(
        dirFd,
        path,
        O.RDONLY | O.NOFOLLOW,
        RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS,
      );
    } catch (e) {
      throw notExact(`${path} cannot be opened (${(e as Error).message})`, e);
    }
    const st = fstatx(fd);
    if (st.kind !== "file" || st.size !== size) {
      close(fd);
      throw notExact(
        st.kind !== "file"
          ? `${path} is a ${st.kind}, the record has a file`
          : `${path} has ${st.size} bytes, the record says ${size}`,
      );
    }
    const c = since!;
    if (
      st.ctimeSec > c.sec || (st.ctimeSec === c.sec && st.ctimeNsec > c.nsec)
    ) {
      close(fd);
      throw notExact(changedAfter(path));
    }
    cur = { fd, path, size, left: size, want, crc: 0 };
  };
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      try {
        if (!ops) {
          record = await Deno.open(recordPath);
          since = ctimeAt(AT_FDCWD, recordPath);
          ops = decodeRecord(record);
          dirFd = openat(AT_FDCWD, dirPath, O.PATH | O.DIRECTORY);
        }
        const out = new Uint8Array(CHUNK);
        let at = 0;
        let end: { size: number; sha256: Uint8Array } | undefined;
        while (at < CHUNK && !end) {
          if (cur) {
            const f = cur;
            const n = f.left === 0
              ? 0
              : read(f.fd, out.subarray(at), Math.min(f.left, CHUNK - at));
            if (n === 0 && f.left > 0) {
              throw notExact(`${f.path} is shorter than the record says`);
            }
            f.crc = sums.crc32(out.subarray(at, at + n), f.crc);
            at += n;
            f.left -= n;
            if (f.left === 0) {
              const extra = read(f.fd, new Uint8Array(1), 1);
              close(f.fd);
              cur = null;
              if (extra !== 0) {
                throw notExact(`${f.path} is longer than the record says`);
              }
              if (f.crc >>> 0 !== f.want) {
                throw notExact(`the content of ${f.path} changed (crc32)`);
              }
            }
            continue;
          }
          if (seg) {
            const n = Math.min(seg.length, CHUNK - at);
            out.set(seg.subarray(0, n), at);
            at += n;
            seg = n === seg.length ? null : seg.subarray(n);
            continue;
          }
          const x = await ops.next();
          if (x.done) throw notExact("the record has no end");
          const op = x.value;
          if (op.op === "segment") seg = op.bytes;
          else if (op.op === "file") openFile(op.path, op.size, op.crc);
          else end = op;
        }
        sums.update(out.subarray(0, at));
        if (end) {
          const got = await sums.digest();
          const total = sums.size;
          const want = Array.from(
            end.sha256,
            (b) => b.toString(16).padStart(2, "0"),
          ).join("");
          if (total !== end.size || got !== want) {
            throw notExact(
              `the rebuilt tar has sha256:${got} (${total} bytes), the record says sha256:${want} (${end.size} bytes)`,
            );
          }
          if (options.sha256 !== undefined && got !== options.sha256) {
            throw notExact(
              `the rebuilt tar has sha256:${got}, expected sha256:${options.sha256}`,
            );
          }
          // Last, so the record's own checks name what they find first:
          // what the record cannot see (a file added, a mode, owner or xattr
          // changed in place) moved a ctime past the record's.
          let changed: string | null;
          try {
            changed = layerChangedSince(dirPath, since!);
          } catch (e) {
            throw notExact(
              `its files cannot be checked against the record (${
                (e as Error).message
              })`,
              e,
            );
          }
          if (changed !== null) {
            throw notExact(
              changedAfter(changed === "." ? "its top directory" : changed),
            );
          }
          cleanup();
          if (at > 0) c.enqueue(out.subarray(0, at));
          c.close();
          return;
        }
        c.enqueue(out.subarray(0, at));
      } catch (e) {
        cleanup();
        if (e instanceof LayerNotExact) throw e;
        throw notExact(
          `the record cannot be read (${(e as Error).message})`,
          e,
        );
      }
    },
    cancel() {
      cleanup();
    },
  }, { highWaterMark: 0 });
}
