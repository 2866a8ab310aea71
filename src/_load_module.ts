/**
 * Internal: loads one of layerfs's own modules on first use, outside the
 * module graph Deno builds at start-up.
 *
 * Why not `import("./open.ts")`: Deno follows a dynamic import whose
 * specifier is a string literal while it builds the start-up graph, reading
 * and hashing every module behind it even when the code never runs: mod.ts's
 * lazy entry points put 80 modules in every process's start (~2.5 ms of its
 * ~22 ms on the 2-core VM, Deno 2.9.6), the CLI's command table 113 (~2 ms of
 * `layerfs --version`). A computed specifier is loaded only when called.
 *
 * The price: Deno checks permissions for a computed import, so loading from
 * a local copy needs read access to it (from JSR: import access to its host,
 * allowed by default), as `new Worker(url)` does. Denied, it is a
 * {@link PermissionRequired} naming the flag; a process that imports
 * `src/preload.ts` has every such module in its start-up graph and needs no
 * more. `deno compile` and `deno cache` cannot see these modules either:
 * preload.ts names them all, scripts/compile.ts `--include`s it, and
 * tests/compile/include_test.ts checks it against the calls in src/.
 *
 * @module
 */

import { PermissionRequired } from "./errors.ts";

/**
 * Imports `url` (one of layerfs's modules, resolved against the caller's
 * `import.meta.url`), typed by the caller: pass
 * `typeof import("./that.ts")`, which is a type only and loads nothing.
 *
 * @param url The module.
 * @returns Its namespace.
 * @throws {PermissionRequired} when Deno may not read (or import) it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadModule } from "./_load_module.ts";
 * const digest = await loadModule<typeof import("./image/digest.ts")>(
 *   new URL("./image/digest.ts", import.meta.url),
 * );
 * assert.equal(digest.digestHex("sha256:" + "a".repeat(64), "x"), "a".repeat(64));
 * ```
 */
export async function loadModule<T>(url: URL): Promise<T> {
  try {
    // `deno publish` warns "unable to analyze dynamic import" here; the URL
    // is absolute (resolved by the caller), so it needs no import map at run
    // time, which is what the warning asks to make sure of.
    return await import(url.href) as T;
  } catch (e) {
    if (refusedInside(e, ROOT)) {
      throw new PermissionRequired(url, ROOT, { cause: e });
    }
    throw e;
  }
}

/** This copy of layerfs: the directory (or URL prefix) above `src/`. */
const ROOT = new URL("../", import.meta.url);

/**
 * Whether `e` is Deno refusing to load a module of `root`. Deno 2.9.6 throws
 * a TypeError "Requires read access to "<path>"" (or "import access to
 * "<host>"") for a refused computed import, naming the first module it may
 * not load; an error the loaded code throws at its top level (a permission
 * it needs itself, a syntax error, a missing module) is not this, and passes
 * through unchanged.
 */
function refusedInside(e: unknown, root: URL): boolean {
  if (!(e instanceof TypeError)) return false;
  const m = /^Requires (read|import) access to "([^"]*)"/.exec(e.message);
  if (!m) return false;
  if (m[1] === "import") return root.protocol !== "file:" && m[2] === root.host;
  if (root.protocol !== "file:") return false;
  const dir = decodeURIComponent(root.pathname);
  return m[2].startsWith(dir);
}
