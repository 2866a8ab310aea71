/**
 * The module graph Deno builds for an entry point, read with `deno info
 * --json` (and `deno doc --json`, through the same runner): what
 * tests/startup_test.ts and tests/compile/include_test.ts check start-up
 * loading, exports and the compile list against.
 *
 * @module
 */
import assert from "node:assert/strict";

/** The repository root, as a file: URL ending in "/". */
export const ROOT = new URL("../", import.meta.url);

/** One dependency of a module, as `deno info --json` lists it. */
export interface InfoDependency {
  /** The runtime import (absent for a type-only one). */
  code?: { specifier: string };
  /** True for an `import()`. */
  isDynamic?: boolean;
}

/** One module of the graph. */
export interface InfoModule {
  /** Its URL. */
  specifier: string;
  /** What it imports. */
  dependencies?: InfoDependency[];
}

/**
 * The JSON `deno <command> --json <path>` prints (`info`, `doc`), for a
 * path relative to the repository; the command must succeed.
 */
export async function denoJson(
  command: "info" | "doc",
  path: string,
): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [command, "--json", new URL(path, ROOT).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** `deno info --json` of `entry` (a path relative to the repository). */
export async function moduleInfo(
  entry: string,
): Promise<{ roots: string[]; modules: InfoModule[] }> {
  return await denoJson("info", entry) as {
    roots: string[];
    modules: InfoModule[];
  };
}

/**
 * The modules `entry` loads before its first line runs, as paths relative
 * to the repository (`node:` built-ins and remote modules as they are
 * named): static runtime imports only, so type-only imports and `import()`
 * are left out.
 */
export async function staticGraph(entry: string): Promise<Set<string>> {
  const info = await moduleInfo(entry);
  const edges = new Map(
    info.modules.map((m) => [
      m.specifier,
      (m.dependencies ?? []).filter((d) => d.code && !d.isDynamic).map((d) =>
        d.code!.specifier
      ),
    ]),
  );
  const seen = new Set<string>();
  const todo = [...info.roots];
  while (todo.length > 0) {
    const s = todo.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    todo.push(...(edges.get(s) ?? []));
  }
  return new Set(
    [...seen].map((s) =>
      s.startsWith(ROOT.href) ? s.slice(ROOT.href.length) : s
    ),
  );
}
