/**
 * Internal: Node built-in modules, loaded on first use.
 *
 * Why not `import ... from "node:zlib"`: the first static import of any
 * `node:` module makes Deno set up its Node compatibility layer while the
 * module graph loads, which cost every process that imported mod.ts ~25 ms
 * of its ~50 ms start-up (Deno 2.9.6, measured: `node:crypto` alone +13 ms,
 * `node:path` +8 ms over an empty script), even a tool that only applies a
 * tar and never hashes, compresses or reads an auth file.
 * `process.getBuiltinModule` (Node 22.3, supported by Deno) loads the module
 * synchronously at the call instead, so the callers keep their sync APIs and
 * only the code that needs a built-in pays for it. The `import type`s below
 * are erased: they load nothing.
 *
 * @module
 */

import type * as NodeBuffer from "node:buffer";
import type * as NodeCrypto from "node:crypto";
import type * as NodePath from "node:path";
import type * as NodeZlib from "node:zlib";

interface BuiltinLoader {
  getBuiltinModule(id: string): unknown;
}

const cache = new Map<string, unknown>();

function builtin<T>(id: string): T {
  let m = cache.get(id);
  if (m === undefined) {
    const p = (globalThis as unknown as { process: BuiltinLoader }).process;
    m = p.getBuiltinModule(id);
    cache.set(id, m);
  }
  return m as T;
}

/**
 * The built-ins this process loaded through this module so far, for tests
 * that check a path stays clear of Deno's Node compatibility layer.
 *
 * @returns Module ids such as `"node:zlib"`, in load order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadedBuiltins, nodePath } from "./_node.ts";
 * nodePath();
 * assert.ok(loadedBuiltins().includes("node:path"));
 * ```
 */
export function loadedBuiltins(): string[] {
  return [...cache.keys()];
}

/** `node:crypto`, loaded on first call. */
export function nodeCrypto(): typeof NodeCrypto {
  return builtin("node:crypto");
}

/** `node:zlib`, loaded on first call. */
export function nodeZlib(): typeof NodeZlib {
  return builtin("node:zlib");
}

/** `node:path`, loaded on first call. */
export function nodePath(): typeof NodePath {
  return builtin("node:path");
}

/** `node:buffer`'s `Buffer`, loaded on first call. */
export function nodeBuffer(): typeof NodeBuffer.Buffer {
  return builtin<typeof NodeBuffer>("node:buffer").Buffer;
}
