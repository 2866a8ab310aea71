/**
 * Internal: lexical cleaning of tar entry names and link targets.
 *
 * Choice (documented in apply_tar.ts): names are cleaned like Go's
 * `filepath.Clean` applied under a root, the way containerd's
 * `fs.RootPath` and the kernel's RESOLVE_IN_ROOT treat them: a leading `/`
 * is dropped (absolute names are taken relative to the layer), empty and `.`
 * components vanish, and `..` removes the previous component but stays at the
 * root when there is none (`../../etc/passwd` becomes `etc/passwd`). The
 * result can never name anything outside the layer, so such entries are
 * contained rather than refused. (Moby refuses them as a "breakout"; both are
 * safe, containment keeps archives made with `tar -P` or `../` prefixes usable.)
 *
 * @module
 */

/**
 * The cleaned, root-relative form of a tar name: components joined by `/`,
 * no leading or trailing slash, no `.` or `..`; `""` is the root itself.
 */
export function cleanPath(name: string): string {
  if (isClean(name)) return name;
  const out: string[] = [];
  for (const c of name.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") out.pop();
    else out.push(c);
  }
  return out.join("/");
}

/** Fast check for the common case: `a/b/c` without `.`-only, `..` or empty components. */
function isClean(name: string): boolean {
  const n = name.length;
  if (n === 0) return true;
  if (name.charCodeAt(0) === 0x2f || name.charCodeAt(n - 1) === 0x2f) {
    return false;
  }
  let start = 0;
  for (let i = 0; i <= n; i++) {
    if (i === n || name.charCodeAt(i) === 0x2f) {
      const len = i - start;
      if (len === 0) return false;
      if (name.charCodeAt(start) === 0x2e) {
        if (len === 1) return false;
        if (len === 2 && name.charCodeAt(start + 1) === 0x2e) return false;
      }
      start = i + 1;
    }
  }
  return true;
}

/** Splits a cleaned path into its parent (`""` for the root) and last component. */
export function splitPath(path: string): [parent: string, base: string] {
  const i = path.lastIndexOf("/");
  return i < 0 ? ["", path] : [path.slice(0, i), path.slice(i + 1)];
}

/** Joins a cleaned parent path and one component. */
export function joinPath(parent: string, base: string): string {
  return parent === "" ? base : `${parent}/${base}`;
}
