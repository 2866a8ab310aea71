/**
 * Internal: paths in the CLI's line-per-entry text (`changes`), quoted as
 * GNU tar's default `escape` style does, so a file named "a\nD /etc" cannot
 * forge a line: a backslash and every control character become C escapes
 * (`\\`, `\n`, `\t`, `\177`...). Everything else, UTF-8 included, is as is.
 * `--json` gives the raw paths.
 *
 * @module
 */

const NAMED: Record<string, string> = {
  "\\": "\\\\",
  "\n": "\\n",
  "\t": "\\t",
  "\r": "\\r",
  "\f": "\\f",
  "\v": "\\v",
  "\b": "\\b",
  "\x07": "\\a",
};

/**
 * `path` with `\` and control characters escaped.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { quotePath } from "./_quote.ts";
 * assert.equal(quotePath("/etc/hosts"), "/etc/hosts");
 * assert.equal(quotePath("/a\nD /etc"), "/a\\nD /etc");
 * assert.equal(quotePath("/x\\y\x01\x7f"), "/x\\\\y\\001\\177");
 * ```
 */
export function quotePath(path: string): string {
  return path.replace(
    // deno-lint-ignore no-control-regex
    /[\\\x00-\x1f\x7f]/g,
    (c) => NAMED[c] ?? `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`,
  );
}
