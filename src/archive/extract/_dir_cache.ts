/**
 * Internal: a small LRU of open parent-directory fds, keyed by cleaned path
 * below the layer root. Tar entries come grouped by directory, so nearly every
 * lookup hits the last key; a miss costs one openat2.
 *
 * Entries go stale when the tar removes or replaces a directory or a symlink
 * (an fd keyed "a/b" may have been reached through a symlink "a"), so any such
 * removal calls {@link DirCache.clear}, keeping only the fd in use.
 *
 * @module
 */

import { close } from "../../sys/fd_linux.ts";

/** A cached directory: its fd (O_PATH) and the gid new files in it get. */
export interface CachedDir {
  /** O_PATH|O_DIRECTORY fd of the directory. */
  fd: number;
  /** Group new entries inherit (the dir's gid when it is setgid, else ours). */
  gid: number;
}

/** LRU of open directory fds; closes what it evicts. */
export class DirCache {
  #map = new Map<string, CachedDir>();
  #lastKey: string | undefined;
  #last: CachedDir | undefined;
  #capacity: number;

  constructor(capacity = 64) {
    this.#capacity = capacity;
  }

  /** The cached dir for `path`, marking it most recently used. */
  get(path: string): CachedDir | undefined {
    if (path === this.#lastKey) return this.#last;
    const d = this.#map.get(path);
    if (d !== undefined) {
      this.#map.delete(path);
      this.#map.set(path, d);
      this.#lastKey = path;
      this.#last = d;
    }
    return d;
  }

  /** Adds `d` under `path`, evicting (closing) the least recently used. */
  put(path: string, d: CachedDir): void {
    const old = this.#map.get(path);
    if (old !== undefined && old.fd !== d.fd) close(old.fd);
    this.#map.delete(path);
    this.#map.set(path, d);
    this.#lastKey = path;
    this.#last = d;
    while (this.#map.size > this.#capacity) {
      const [k, v] = this.#map.entries().next().value!;
      this.#map.delete(k);
      close(v.fd);
    }
  }

  /** Closes and forgets every entry except the one holding fd `keep`. */
  clear(keep = -1): void {
    let kept: [string, CachedDir] | undefined;
    for (const [k, v] of this.#map) {
      if (v.fd === keep) kept = [k, v];
      else close(v.fd);
    }
    this.#map.clear();
    this.#lastKey = undefined;
    this.#last = undefined;
    if (kept) this.#map.set(kept[0], kept[1]);
  }

  /** Number of open fds held. */
  get size(): number {
    return this.#map.size;
  }
}
