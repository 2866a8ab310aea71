/**
 * Internal: opens Intel ISA-L (`libisal.so.2`) for one binding, the gzip
 * decoder (`_gunzip_isal.ts`) or the encoder (`_gzip_isal.ts`): the one
 * place that decides whether ISA-L is used at all.
 *
 * @module
 */

/** Whether `d` is granted, asked without a prompt (a run without it gets none). */
function granted(d: Deno.PermissionDescriptor): boolean {
  try {
    return Deno.permissions.querySync(d).state === "granted";
  } catch {
    return false;
  }
}

/**
 * `libisal.so.2` bound with `symbols`, or `null` when `LAYERFS_GZIP=zlib`
 * turns ISA-L off, FFI is not granted, or the library is not installed
 * (Debian/Ubuntu `libisal2`, Fedora `isa-l`). Each binding self-tests what
 * it gets before it trusts it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { openIsal } from "./_isal_lib.ts";
 * const lib = openIsal({ isal_deflate_init: { parameters: ["buffer"], result: "void" } });
 * // Without the library (or with LAYERFS_GZIP=zlib): null, and zlib is used.
 * assert.ok(lib === null || typeof lib.symbols.isal_deflate_init === "function");
 * lib?.close();
 * ```
 */
export function openIsal<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
): Deno.DynamicLibrary<S> | null {
  const env = { name: "env", variable: "LAYERFS_GZIP" } as const;
  if (granted(env) && Deno.env.get("LAYERFS_GZIP") === "zlib") return null;
  if (!granted({ name: "ffi" })) return null;
  try {
    return Deno.dlopen("libisal.so.2", symbols);
  } catch {
    return null; // not installed
  }
}

/**
 * A binding's loader: on its first call opens the library with `symbols`
 * ({@link openIsal}) and keeps it only when `selfTest` passes with those
 * symbols; then always the same answer, the symbols or `null`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isalLoader } from "./_isal_lib.ts";
 * const load = isalLoader({ isal_deflate_init: { parameters: ["buffer"], result: "void" } }, () => false);
 * assert.equal(load(), null); // a failed self-test: never used
 * ```
 */
export function isalLoader<S extends Deno.ForeignLibraryInterface>(
  symbols: S,
  selfTest: (lib: Deno.DynamicLibrary<S>["symbols"]) => boolean,
): () => Deno.DynamicLibrary<S>["symbols"] | null {
  let bound: Deno.DynamicLibrary<S>["symbols"] | null | undefined;
  return () => {
    if (bound !== undefined) return bound;
    bound = null;
    const lib = openIsal(symbols);
    if (lib === null) return null;
    if (selfTest(lib.symbols)) bound = lib.symbols;
    else lib.close();
    return bound;
  };
}
