/**
 * Parsing `/proc/self/mountinfo`: the only truth about what is mounted.
 * layerfs reads it to verify every mount it makes and to reconcile its
 * persisted reference counts with reality.
 *
 * @module
 */

import { AT_FDCWD, close, O, openat, read } from "../sys/fd_linux.ts";

/** One line of mountinfo (proc(5)). */
export interface MountInfoEntry {
  /** Mount id. */
  id: number;
  /** Parent mount id. */
  parent: number;
  /** `major:minor` of the mounted filesystem (st_dev of its files). */
  device: string;
  /** Mount point, unescaped. */
  mountPoint: string;
  /** Per-mount options, e.g. ["ro", "nosuid", "nodev"]. */
  mountOptions: string[];
  /** Filesystem type, e.g. "overlay". */
  fstype: string;
  /** Mount source, unescaped. */
  source: string;
  /** Per-superblock options, each unescaped, e.g. ["rw", "lowerdir+=/a", "upperdir=/u"]. */
  superOptions: string[];
}

/** Undoes the kernel's octal escaping (`\040` for a space, `\134` for a backslash). */
function unescape(s: string): string {
  return s.includes("\\")
    ? s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))
    : s;
}

/**
 * Parses mountinfo text into entries (malformed lines are skipped).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseMountInfo } from "./mountinfo.ts";
 * const [e] = parseMountInfo(
 *   "45 27 0:39 / /mnt/x ro,nosuid - overlay none rw,lowerdir+=/a,upperdir=/u,workdir=/w\n",
 * );
 * assert.equal(e.fstype, "overlay");
 * assert.equal(e.mountPoint, "/mnt/x");
 * assert.deepEqual(e.mountOptions, ["ro", "nosuid"]);
 * assert.deepEqual(e.superOptions, ["rw", "lowerdir+=/a", "upperdir=/u", "workdir=/w"]);
 * ```
 */
export function parseMountInfo(text: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const f = line.split(" ");
    const sep = f.indexOf("-", 6);
    if (f.length < 10 || sep < 0 || f.length < sep + 4) continue;
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      device: f[2],
      mountPoint: unescape(f[4]),
      mountOptions: f[5].split(","),
      fstype: f[sep + 1],
      source: unescape(f[sep + 2]),
      superOptions: f.slice(sep + 3).join(" ").split(",").map(unescape),
    });
  }
  return out;
}

/**
 * Reads and parses `/proc/self/mountinfo`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readMountInfo } from "./mountinfo.ts";
 * const info = await readMountInfo();
 * assert.ok(info.some((m) => m.mountPoint === "/"));
 * ```
 */
export async function readMountInfo(): Promise<MountInfoEntry[]> {
  return parseMountInfo(await Deno.readTextFile("/proc/self/mountinfo"));
}

/**
 * Reads and parses `/proc/self/mountinfo` synchronously through libc, with
 * no Deno permission but FFI: the privileged helper runs without
 * --allow-read for /proc (Deno asks for --allow-all to read /proc/self).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { readMountInfoSync } from "./mountinfo.ts";
 * assert.ok(readMountInfoSync().some((m) => m.mountPoint === "/"));
 * ```
 */
export function readMountInfoSync(): MountInfoEntry[] {
  const fd = openat(AT_FDCWD, "/proc/self/mountinfo", O.RDONLY);
  try {
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(1 << 16);
    for (;;) {
      const n = read(fd, buf);
      if (n === 0) break;
      chunks.push(buf.slice(0, n));
    }
    const all = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    return parseMountInfo(new TextDecoder().decode(all));
  } finally {
    close(fd);
  }
}

/**
 * The topmost mount at `target` (the last one listed), or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mountAt, parseMountInfo } from "./mountinfo.ts";
 * const info = parseMountInfo("45 27 0:39 / /mnt/x rw - tmpfs tmpfs rw\n");
 * assert.equal(mountAt(info, "/mnt/x")?.fstype, "tmpfs");
 * assert.equal(mountAt(info, "/mnt/y"), undefined);
 * ```
 */
export function mountAt(
  info: MountInfoEntry[],
  target: string,
): MountInfoEntry | undefined {
  for (let i = info.length - 1; i >= 0; i--) {
    if (info[i].mountPoint === target) return info[i];
  }
  return undefined;
}

/**
 * The lower dirs, upper dir and work dir an overlay mount reports, from either form the
 * kernel prints: `lowerdir+=` once per layer (new mount API) or one
 * `lowerdir=a:b:c` (mount(2); `\:` escapes a colon inside a path).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { overlayLayers, parseMountInfo } from "./mountinfo.ts";
 * const [e] = parseMountInfo("45 27 0:39 / /m rw - overlay none rw,lowerdir=/a:/b,upperdir=/u\n");
 * assert.deepEqual(overlayLayers(e), { lowerdirs: ["/a", "/b"], upperdir: "/u" });
 * ```
 */
export function overlayLayers(
  e: MountInfoEntry,
): { lowerdirs: string[]; upperdir?: string; workdir?: string } {
  const lowerdirs: string[] = [];
  let upperdir: string | undefined;
  let workdir: string | undefined;
  for (const o of e.superOptions) {
    if (o.startsWith("lowerdir+=")) lowerdirs.push(o.slice(10));
    else if (o.startsWith("lowerdir=")) {
      lowerdirs.push(
        ...o.slice(9).split(/(?<!\\):/).map((p) => p.replaceAll("\\:", ":")),
      );
    } else if (o.startsWith("upperdir=")) upperdir = o.slice(9);
    else if (o.startsWith("workdir=")) workdir = o.slice(8);
  }
  return workdir === undefined
    ? { lowerdirs, upperdir }
    : { lowerdirs, upperdir, workdir };
}
