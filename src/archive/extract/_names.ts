/**
 * Internal: splitting and joining the root-relative paths the extractor works
 * with. Tar names become such paths through `layerPath` (tar/_path.ts), the
 * one rule the reader checks and the extractor places entries by: a leading
 * `/` is dropped, `.` and empty components vanish, and a `..` that would climb
 * above the layer root is refused by the reader, never clamped.
 *
 * @module
 */

/** Splits a root-relative path into its parent (`""` for the root) and last component. */
export function splitPath(path: string): [parent: string, base: string] {
  const i = path.lastIndexOf("/");
  return i < 0 ? ["", path] : [path.slice(0, i), path.slice(i + 1)];
}

/** Joins a root-relative parent path and one component. */
export function joinPath(parent: string, base: string): string {
  return parent === "" ? base : `${parent}/${base}`;
}
