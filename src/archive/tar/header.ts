/**
 * The tar header shared by the reader and the writer (after Go's archive/tar:
 * one plain header type, named type-flag constants).
 *
 * @module
 */

/**
 * Largest uid/gid a tar entry may carry (reader and writer): ids are 32-bit,
 * and 2^32 - 1 is `(uid_t)-1`, which chown(2) reads as "leave unchanged".
 * Anything above would wrap.
 */
export const MAX_ID = 0xfffffffe;
/** Largest device major/minor (32-bit in glibc's dev_t). */
export const MAX_DEV = 0xffffffff;

/** Type flags of the tar formats layerfs reads and writes (ustar, PAX, GNU long names). */
export const TypeFlag = {
  /** Regular file. */
  Reg: 0x30, // '0'
  /** Regular file (pre-POSIX, NUL flag). */
  RegA: 0x00,
  /** Hard link to an earlier entry. */
  Link: 0x31, // '1'
  /** Symbolic link. */
  Symlink: 0x32, // '2'
  /** Character device. */
  Char: 0x33, // '3'
  /** Block device. */
  Block: 0x34, // '4'
  /** Directory. */
  Dir: 0x35, // '5'
  /** FIFO. */
  Fifo: 0x36, // '6'
  /** Contiguous file: treated as a regular file. */
  Cont: 0x37, // '7'
  /** PAX extended header for the next entry. */
  XHeader: 0x78, // 'x'
  /** PAX global extended header. */
  XGlobalHeader: 0x67, // 'g'
  /** GNU long name for the next entry. */
  GNULongName: 0x4c, // 'L'
  /** GNU long link name for the next entry. */
  GNULongLink: 0x4b, // 'K'
  /** GNU sparse file: refused. */
  GNUSparse: 0x53, // 'S'
} as const;

/** One of the {@link TypeFlag} values. */
export type TypeFlag = typeof TypeFlag[keyof typeof TypeFlag];

/** The kind of file an entry describes (type flags '0'/'7'/NUL all become "file"). */
export type EntryType =
  | "file"
  | "hardlink"
  | "symlink"
  | "char"
  | "block"
  | "dir"
  | "fifo";

/**
 * One tar entry's metadata, after PAX and GNU long-name records have been merged in.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { tarHeader, type TarHeader } from "./header.ts";
 * const h: TarHeader = {
 *   name: "etc/hosts", type: "file", size: 12, mode: 0o644, uid: 0, gid: 0,
 *   uname: "", gname: "", mtime: 1700000000, mtimeNsec: 0, linkname: "",
 *   devmajor: 0, devminor: 0, xattrs: new Map(),
 * };
 * // tarHeader fills in the same defaults from the fields that matter:
 * assert.deepEqual(tarHeader({ name: "etc/hosts", size: 12, mtime: 1700000000 }), h);
 * ```
 */
export interface TarHeader {
  /** Path inside the archive, "/"-separated; directories may end in "/". */
  name: string;
  /** Entry kind. */
  type: EntryType;
  /** Body size in bytes (0 for everything but files). */
  size: number;
  /** Permission bits including setuid, setgid and sticky (07777). */
  mode: number;
  /** Numeric owner. */
  uid: number;
  /** Numeric group. */
  gid: number;
  /** Owner name (informational; layerfs uses numeric ids). */
  uname: string;
  /** Group name (informational). */
  gname: string;
  /** Modification time, whole seconds since the epoch (may be negative). */
  mtime: number;
  /** Nanoseconds part of the modification time (0-999999999), from PAX `mtime`. */
  mtimeNsec: number;
  /** Access time, whole seconds (from PAX `atime`; absent when the archive has none). */
  atime?: number;
  /** Nanoseconds part of {@link TarHeader.atime}. */
  atimeNsec?: number;
  /** Target of a symlink or hardlink. */
  linkname: string;
  /** Device major number (char/block). */
  devmajor: number;
  /** Device minor number (char/block). */
  devminor: number;
  /** Extended attributes from `SCHILY.xattr.<name>`, values kept as raw bytes. */
  xattrs: Map<string, Uint8Array>;
  /** Other PAX records of this entry, raw values (absent when none). */
  pax?: Map<string, Uint8Array>;
}

/** The fields {@link tarHeader} needs; every other field has a default. */
export type TarHeaderInit = Partial<TarHeader> & Pick<TarHeader, "name">;

/**
 * Builds a complete {@link TarHeader} from the fields that matter, with
 * defaults for the rest: type "file", size 0, mode 0644 (0755 for dirs),
 * owner 0:0, no names, mtime 0, no link, no device, no xattrs.
 *
 * @example Headers for a directory and a file
 * ```ts
 * import assert from "node:assert/strict";
 * import { tarHeader } from "./header.ts";
 * const dir = tarHeader({ name: "etc/", type: "dir" });
 * const file = tarHeader({ name: "etc/hosts", size: 10, mtime: 1700000000 });
 * assert.equal(dir.mode, 0o755);
 * assert.equal(file.type, "file");
 * assert.equal(file.mode, 0o644);
 * ```
 */
export function tarHeader(init: TarHeaderInit): TarHeader {
  const type = init.type ?? "file";
  return {
    type,
    size: 0,
    mode: type === "dir" ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    uname: "",
    gname: "",
    mtime: 0,
    mtimeNsec: 0,
    linkname: "",
    devmajor: 0,
    devminor: 0,
    xattrs: new Map(),
    ...init,
  };
}

/**
 * The entry kind of a type flag, or `undefined` for metadata and unsupported
 * flags. Contiguous files ('7') are regular files everywhere but on one 1980s
 * OS (Go does the same).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { entryTypeOf, TypeFlag } from "./header.ts";
 * assert.equal(entryTypeOf(TypeFlag.Dir), "dir");
 * assert.equal(entryTypeOf(TypeFlag.XHeader), undefined); // an extension header, not an entry
 * ```
 */
export function entryTypeOf(flag: number): EntryType | undefined {
  switch (flag) {
    case TypeFlag.Reg:
    case TypeFlag.RegA:
    case TypeFlag.Cont:
      return "file";
    case TypeFlag.Link:
      return "hardlink";
    case TypeFlag.Symlink:
      return "symlink";
    case TypeFlag.Char:
      return "char";
    case TypeFlag.Block:
      return "block";
    case TypeFlag.Dir:
      return "dir";
    case TypeFlag.Fifo:
      return "fifo";
  }
  return undefined;
}

/**
 * The type flag the writer uses for each entry kind.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TYPE_FLAG_OF } from "./header.ts";
 * assert.equal(String.fromCharCode(TYPE_FLAG_OF.symlink), "2");
 * ```
 */
export const TYPE_FLAG_OF: Readonly<Record<EntryType, TypeFlag>> = {
  file: TypeFlag.Reg,
  hardlink: TypeFlag.Link,
  symlink: TypeFlag.Symlink,
  char: TypeFlag.Char,
  block: TypeFlag.Block,
  dir: TypeFlag.Dir,
  fifo: TypeFlag.Fifo,
};
