/**
 * Internal: where an image's files come from. Two kinds, one interface:
 * - a tar (docker-archive, oci-archive): its members are indexed in one pass
 *   with our tar reader (name -> body offset and size; symlinks and hard
 *   links among members resolved inside the archive), then each blob is read
 *   by offset from its own file handle;
 * - a directory (an OCI layout): every file is opened with openat2
 *   `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` below the layout's fd, so no
 *   symlink can lead out of it.
 *
 * Paths come from the image and are hostile: {@link safePath} refuses
 * absolute paths, `..`, NUL and empty components instead of cleaning them.
 *
 * @module
 */

import { InvalidImage } from "../errors.ts";
import { TarReader } from "../archive/tar/reader.ts";
import { close, O, openat, openat2, RESOLVE } from "../sys/fd_linux.ts";
import { SysError } from "../sys/libc_linux.ts";

/** One file of an image, ready to stream. */
export interface SourceFile {
  /** Its size in bytes. */
  size: number;
  /** Exactly `size` bytes (errors if the file ends early). */
  stream(): ReadableStream<Uint8Array>;
}

/** The files of an image archive or layout. */
export interface ImageSource {
  /** For messages: the file or directory given. */
  readonly label: string;
  /** Whether a file exists at `path` (a {@link safePath}). */
  has(path: string): boolean;
  /** Opens `path`; undefined when it is missing. */
  open(path: string): SourceFile | undefined;
  /** Releases what the source holds. */
  close(): void;
}

/**
 * `path` as archive-relative components joined by "/", "./" parts dropped.
 *
 * @throws {InvalidImage} an absolute path, `..`, NUL or an empty path.
 */
export function safePath(path: unknown, subject: string): string {
  if (typeof path !== "string" || path === "" || path.includes("\0")) {
    throw new InvalidImage(
      subject,
      `the path ${JSON.stringify(path)} is not a file name`,
    );
  }
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (path.startsWith("/") || parts.includes("..") || parts.length === 0) {
    throw new InvalidImage(
      subject,
      `the path ${JSON.stringify(path)} points outside the archive`,
      "refusing it: names in an image must stay inside it",
    );
  }
  return parts.join("/");
}

interface Member {
  type: string;
  offset: number;
  size: number;
  linkname: string;
}

/** A region of a file as a byte stream of exactly `size` bytes. */
function regionStream(
  path: string,
  offset: number,
  size: number,
): ReadableStream<Uint8Array> {
  let file: Deno.FsFile | undefined;
  let left = size;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      try {
        if (!file) {
          file = await Deno.open(path);
          await file.seek(offset, Deno.SeekMode.Start);
        }
        if (left === 0) {
          file.close();
          file = undefined;
          c.close();
          return;
        }
        const buf = new Uint8Array(Math.min(left, 1 << 20));
        const n = await file.read(buf);
        if (n === null || n === 0) {
          throw new InvalidImage(
            path,
            `the file ended ${left} bytes early`,
            "the archive is truncated; make or fetch it again",
          );
        }
        left -= n;
        c.enqueue(buf.subarray(0, n));
      } catch (e) {
        file?.close();
        file = undefined;
        throw e;
      }
    },
    cancel() {
      file?.close();
      file = undefined;
    },
  }, { highWaterMark: 0 });
}

/**
 * Indexes the tar at `path` (one pass; bodies are skipped by seeking).
 *
 * @throws {InvalidImage} the tar is malformed or truncated.
 */
export async function tarSource(
  path: string,
  label = path,
): Promise<ImageSource> {
  const members = new Map<string, Member>();
  {
    using file = await Deno.open(path);
    const r = new TarReader(file);
    try {
      for (let h; (h = await r.next()) !== null;) {
        const name = h.name.split("/").filter((p) => p !== "" && p !== ".")
          .join("/");
        members.set(name, {
          type: h.type,
          offset: r.bytesRead,
          size: h.type === "file" ? h.size : 0,
          linkname: h.linkname,
        });
      }
    } catch (e) {
      throw new InvalidImage(
        label,
        `it is not a readable tar (${(e as Error).message})`,
        "the archive is corrupt or truncated; make or fetch it again",
        { cause: e },
      );
    }
  }
  const resolve = (name: string): Member | undefined => {
    for (let hops = 0; hops < 16; hops++) {
      const m = members.get(name);
      if (!m) return undefined;
      if (m.type === "file") return m;
      if (m.type === "hardlink") name = safePath(m.linkname, path);
      else if (m.type === "symlink") {
        // Relative to the member's directory, and still inside the archive.
        const base = m.linkname.startsWith("/")
          ? []
          : name.split("/").slice(0, -1);
        const parts = [...base];
        for (const p of m.linkname.split("/")) {
          if (p === "" || p === ".") continue;
          if (p === "..") {
            if (parts.length === 0) return undefined;
            parts.pop();
          } else parts.push(p);
        }
        name = parts.join("/");
      } else return undefined;
    }
    return undefined;
  };
  return {
    label,
    has: (p) => resolve(p) !== undefined,
    open(p) {
      const m = resolve(p);
      if (!m) return undefined;
      return {
        size: m.size,
        stream: () => regionStream(path, m.offset, m.size),
      };
    },
    close() {},
  };
}

/**
 * An OCI layout directory. Files are opened beneath its fd only.
 *
 * @throws {InvalidImage} `dir` is not a directory.
 */
export function dirSource(dir: string): ImageSource {
  let dirfd: number;
  try {
    dirfd = openat(-100, dir, O.RDONLY | O.DIRECTORY);
  } catch (e) {
    throw new InvalidImage(
      dir,
      `it cannot be opened as a directory (${(e as Error).message})`,
      "pass an OCI layout directory, a tar, or - for standard input",
      { cause: e },
    );
  }
  // Every open is checked again: open() learns the size, stream() reopens.
  const openBeneath = (p: string): Deno.FsFile | undefined => {
    let fd: number;
    try {
      fd = openat2(
        dirfd,
        p,
        O.RDONLY,
        RESOLVE.BENEATH | RESOLVE.NO_MAGICLINKS,
      );
    } catch (e) {
      if (e instanceof SysError && e.code === "ENOENT") return undefined;
      if (e instanceof SysError && e.code === "EXDEV") {
        throw new InvalidImage(
          `${dir}/${p}`,
          "a symlink leads out of the layout directory",
          "refusing it: an OCI layout must be self-contained",
        );
      }
      throw e;
    }
    try {
      // Reopened through the fd itself: the same inode, no path lookup.
      const file = Deno.openSync(`/proc/self/fd/${fd}`);
      if (file.statSync().isFile) return file;
      file.close();
      return undefined;
    } finally {
      close(fd);
    }
  };
  const open = (p: string): SourceFile | undefined => {
    const f = openBeneath(p);
    if (!f) return undefined;
    const size = f.statSync().size;
    f.close();
    return {
      size,
      stream: () => {
        const file = openBeneath(p);
        if (!file) {
          throw new InvalidImage(`${dir}/${p}`, "it disappeared while loading");
        }
        return fileStream(file, size);
      },
    };
  };
  return {
    label: dir,
    has: (p) => open(p) !== undefined,
    open,
    close() {
      close(dirfd);
    },
  };
}

/** An open file read from its start, exactly `size` bytes, closed at the end. */
function fileStream(
  file: Deno.FsFile,
  size: number,
): ReadableStream<Uint8Array> {
  let left = size;
  let closed = false;
  const done = () => {
    if (!closed) file.close();
    closed = true;
  };
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      try {
        if (left === 0) {
          done();
          c.close();
          return;
        }
        const buf = new Uint8Array(Math.min(left, 1 << 20));
        const n = await file.read(buf);
        if (n === null || n === 0) {
          throw new InvalidImage(
            "a layout file",
            `it ended ${left} bytes early`,
            "the layout changed while it was read; load it again",
          );
        }
        left -= n;
        c.enqueue(buf.subarray(0, n));
      } catch (e) {
        done();
        throw e;
      }
    },
    cancel: done,
  }, { highWaterMark: 0 });
}
