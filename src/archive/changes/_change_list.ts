/**
 * Internal: collects changes by path and returns them sorted by the UTF-8
 * bytes of the path (Go's string order, as moby's `changesByPath`).
 *
 * @module
 */

import type { Change } from "../types.ts";
import { StoreError } from "../../errors.ts";
import { type DirEntry, displayName } from "../../sys/fs_walk_linux.ts";

/**
 * Compares two names by their UTF-8 bytes (what `tar --sort=name`, Go and
 * moby use). JS `<` compares UTF-16 code units, which orders astral
 * characters (surrogates, 0xD800-0xDFFF) before U+E000-U+FFFF; shifting the
 * two ranges restores code point order, which equals UTF-8 byte order.
 */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800) x = x < 0xe000 ? x + 0x2000 : x - 0x800;
      if (y >= 0xd800) y = y < 0xe000 ? y + 0x2000 : y - 0x800;
      return x - y;
    }
  }
  return a.length - b.length;
}

/** A set of changes keyed by path; a later add/modify overrides a delete. */
export class ChangeList {
  #byPath = new Map<string, Change["kind"]>();

  /** Records `kind` for `path` (absolute, "/a/b"). */
  record(path: string, kind: Change["kind"]): void {
    const had = this.#byPath.get(path);
    // A name both whited out and present (aufs after re-creation) exists now:
    // from the merged view it was modified, not deleted.
    if (had !== undefined && had !== "delete" && kind === "delete") return;
    if (had === "delete" && kind !== "delete") kind = "modify";
    this.#byPath.set(path, kind);
  }

  /** True when `path` has been recorded. */
  has(path: string): boolean {
    return this.#byPath.has(path);
  }

  /** The changes, sorted by path. */
  sorted(): Change[] {
    const out: Change[] = [];
    for (const [path, kind] of this.#byPath) out.push({ path, kind });
    out.sort((a, b) => compareNames(a.path, b.path));
    return out;
  }
}

/** The entry's name, or a typed error when it is not UTF-8 (tar names here are text). */
export function entryName(e: DirEntry, dirPath: string): string {
  if (e.name !== null) return e.name;
  throw new StoreError(
    `Cannot handle "${dirPath}/${
      displayName(e.cname)
    }": the name is not valid UTF-8, and layerfs carries tar names and change paths as text; rename the file`,
  );
}

/** Sorts directory entries by the bytes of their names. */
export function sortEntries(entries: DirEntry[]): DirEntry[] {
  return entries.sort((a, b) => {
    const x = a.cname;
    const y = b.cname;
    const n = Math.min(x.length, y.length);
    for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  });
}
