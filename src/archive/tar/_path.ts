/**
 * Internal: the one rule for the paths a tar names (entry names and
 * hard-link targets), shared by the reader, which refuses what breaks it, and
 * the extractor, which places entries by it.
 *
 * A name is read lexically, relative to the layer root:
 * - leading `/` are dropped: absolute names are taken relative to the layer,
 *   which is what GNU tar does by default ("Removing leading `/' from member
 *   names") and what the container sees;
 * - empty and `.` components vanish (`./etc//hosts` is `etc/hosts`; docker
 *   and podman write `./` entries);
 * - `..` removes the previous component; a `..` with nothing left to remove
 *   climbs above the layer root, and such a name is refused, never clamped
 *   (`../etc/passwd` and `a/../../x` are errors, not `etc/passwd` and `x`; moby
 *   refuses them as a "breakout" too).
 *
 * @module
 */

const SLASH = 0x2f;
const DOT = 0x2e;

/**
 * The root-relative form of a tar path: components joined by `/`, no leading
 * or trailing slash, no `.` or `..`; `""` is the layer root itself. Returns
 * `null` when a `..` climbs above the root.
 *
 * Common names (`a/b`, `./a/b/`, `/a/b`) cost one scan and no allocation but
 * a sliced string: the reader and the extractor call this for every entry.
 */
export function layerPath(name: string): string | null {
  let start = 0;
  let end = name.length;
  // Leading "/" and "./" (a lone "." included).
  while (start < end) {
    const c = name.charCodeAt(start);
    if (c === SLASH) start++;
    else if (
      c === DOT && (start + 1 === end || name.charCodeAt(start + 1) === SLASH)
    ) start += 2;
    else break;
  }
  while (end > start && name.charCodeAt(end - 1) === SLASH) end--;
  if (start >= end) return "";
  if (isClean(name, start, end)) {
    return start === 0 && end === name.length ? name : name.slice(start, end);
  }
  const out: string[] = [];
  for (const c of name.slice(start, end).split("/")) {
    if (c === "" || c === ".") continue;
    if (c !== "..") out.push(c);
    else if (out.length === 0) return null;
    else out.pop();
  }
  return out.join("/");
}

/** True when `name[start, end)` has no empty, `.` or `..` component. */
function isClean(name: string, start: number, end: number): boolean {
  for (let i = start;;) {
    let j = name.indexOf("/", i);
    if (j < 0 || j > end) j = end;
    const len = j - i;
    if (len === 0) return false;
    if (
      name.charCodeAt(i) === DOT &&
      (len === 1 || (len === 2 && name.charCodeAt(i + 1) === DOT))
    ) return false;
    if (j === end) return true;
    i = j + 1;
  }
}
