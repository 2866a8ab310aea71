/**
 * Test helper: a tiny, deliberately permissive ustar + PAX writer for building
 * exact (also hostile) archives: `../` names, absolute names, PAX `path`
 * overrides, hardlinks anywhere, binary xattrs, truncation. The real
 * TarWriter refuses or normalises some of these, so tests build their own.
 *
 * @module
 */

const enc = new TextEncoder();

/** One entry to write. */
export interface E {
  name: string;
  type?: "file" | "dir" | "symlink" | "hardlink" | "char" | "block" | "fifo";
  body?: string | Uint8Array;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  /** When set, a PAX `mtime` record with nanoseconds is written. */
  mtimeNsec?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Uint8Array | string>;
  /** Extra PAX records (e.g. `path`, `linkpath`), written verbatim. */
  pax?: Record<string, string | Uint8Array>;
}

const FLAG = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  char: "3",
  block: "4",
  dir: "5",
  fifo: "6",
} as const;

function put(b: Uint8Array, off: number, len: number, s: string | Uint8Array) {
  const v = typeof s === "string" ? enc.encode(s) : s;
  b.set(v.subarray(0, len), off);
}

function octal(b: Uint8Array, off: number, len: number, v: number) {
  put(b, off, len, v.toString(8).padStart(len - 1, "0") + "\0");
}

function header(
  name: string,
  flag: string,
  size: number,
  e: Partial<E>,
): Uint8Array {
  const b = new Uint8Array(512);
  put(b, 0, 100, name);
  octal(b, 100, 8, e.mode ?? 0o644);
  octal(b, 108, 8, e.uid ?? 0);
  octal(b, 116, 8, e.gid ?? 0);
  octal(b, 124, 12, size);
  octal(b, 136, 12, e.mtime ?? 1_600_000_000);
  put(b, 156, 1, flag);
  put(b, 157, 100, e.linkname ?? "");
  put(b, 257, 8, "ustar\x0000");
  octal(b, 329, 8, e.devmajor ?? 0);
  octal(b, 337, 8, e.devminor ?? 0);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  put(b, 148, 8, sum.toString(8).padStart(6, "0") + "\0 ");
  return b;
}

function record(key: string, value: Uint8Array): Uint8Array {
  const k = enc.encode(key);
  const base = k.length + value.length + 3;
  let len = base + String(base).length;
  if (String(len).length !== String(base).length) {
    len = base + String(len).length;
  }
  const out = new Uint8Array(len);
  const p = enc.encode(`${len} `);
  out.set(p);
  out.set(k, p.length);
  out[p.length + k.length] = 0x3d;
  out.set(value, p.length + k.length + 1);
  out[len - 1] = 0x0a;
  return out;
}

function padded(body: Uint8Array): Uint8Array[] {
  const pad = (512 - body.length % 512) % 512;
  return [body, new Uint8Array(pad)];
}

/** Builds an archive; `truncateAt` cuts it to that many bytes (no end blocks then). */
export function tar(
  entries: E[],
  opts: { truncateAt?: number } = {},
): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const e of entries) {
    const type = e.type ?? "file";
    const body = typeof e.body === "string"
      ? enc.encode(e.body)
      : e.body ?? new Uint8Array();
    const recs: Uint8Array[] = [];
    if (e.mtimeNsec !== undefined) {
      recs.push(
        record(
          "mtime",
          enc.encode(
            `${e.mtime ?? 1_600_000_000}.${
              String(e.mtimeNsec).padStart(9, "0")
            }`,
          ),
        ),
      );
    }
    for (const [k, v] of Object.entries(e.xattrs ?? {})) {
      recs.push(
        record(`SCHILY.xattr.${k}`, typeof v === "string" ? enc.encode(v) : v),
      );
    }
    for (const [k, v] of Object.entries(e.pax ?? {})) {
      recs.push(record(k, typeof v === "string" ? enc.encode(v) : v));
    }
    if (enc.encode(e.name).length > 100 && !e.pax?.path) {
      recs.push(record("path", enc.encode(e.name)));
    }
    if (recs.length > 0) {
      const pb = new Uint8Array(recs.reduce((n, r) => n + r.length, 0));
      let o = 0;
      for (const r of recs) {
        pb.set(r, o);
        o += r.length;
      }
      parts.push(header("PaxHeaders/x", "x", pb.length, {}), ...padded(pb));
    }
    parts.push(
      header(
        e.name.slice(0, 100),
        FLAG[type],
        type === "file" ? body.length : 0,
        e,
      ),
    );
    if (type === "file") parts.push(...padded(body));
  }
  parts.push(new Uint8Array(1024));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return opts.truncateAt === undefined ? out : out.slice(0, opts.truncateAt);
}

/** Hex dump of every xattr of `path` (not followed) as `getfattr` prints it, name -> hex. */
export async function xattrs(path: string): Promise<Record<string, string>> {
  const out = await new Deno.Command("getfattr", {
    args: ["-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", path],
  }).output();
  const res: Record<string, string> = {};
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    const m = /^([^#=][^=]*)=0x([0-9a-f]*)$/.exec(line);
    if (m) res[m[1]] = m[2];
  }
  return res;
}

import { AT_FDCWD } from "../../../src/sys/fd_linux.ts";
import { statxAtOrNull } from "../../../src/sys/fs_walk_linux.ts";

/** statx of `path` without following a final symlink; throws when missing. */
export function statAt(path: string) {
  const st = statxAtOrNull(AT_FDCWD, path);
  if (st === null) throw new Deno.errors.NotFound(path);
  return st;
}
