/**
 * The modules layerfs loads outside Deno's module graph (`loadModule(new
 * URL(...))`, `new Worker(new URL(...))`) are what `deno compile` cannot
 * find by itself: src/preload.ts must import each loadModule target, and
 * scripts/compile.ts `--include` it and the workers, or the CLI binary fails
 * at the first command that needs one (and a user's `deno cache` of
 * preload.ts misses it). This reads every such call in src/ and helper/
 * and checks the lists, and that each call's type (`typeof import("X")`)
 * names the module its URL loads. It needs no denort, so it runs everywhere.
 */
import assert from "node:assert/strict";
import { TARGETS } from "../../scripts/compile.ts";
import { ROOT, staticGraph } from "../_module_graph.ts";

/** Every .ts file under `dir` (a path relative to the repository). */
async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL(dir, ROOT))) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await sources(path));
    else if (e.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** Source text without comment lines (JSDoc examples import freely). */
function code(text: string): string {
  return text.split("\n").filter((l) => !/^\s*(\*|\/\/|\/\*)/.test(l)).join(
    "\n",
  );
}

interface Loaded {
  file: string;
  typed?: string;
  url: string;
}

/**
 * The loadModule and Worker calls of `file`, with their specifiers, and the
 * calls the scan could not read: any other `loadModule(`, `new Worker(` or
 * `import(` (a template literal, a type alias for the module, a computed
 * name) is reported, so that a call written another way fails the test
 * rather than slipping past it. Whitespace is collapsed first, so line
 * breaks inside a call do not matter.
 */
function loadsOf(
  file: string,
  source: string,
): { loads: Loaded[]; unread: string[] } {
  const text = source.replace(/\s+/g, " ");
  const loads: Loaded[] = [];
  const lazy =
    /\bloadModule< ?typeof import\("([^"]+)"\) ?>\( ?new URL\( ?"([^"]+)", import\.meta\.url,? ?\)/g;
  for (const m of text.matchAll(lazy)) {
    loads.push({ file, typed: m[1], url: m[2] });
  }
  // A Worker is made from a module's own WORKER_URL, or (src/archive/
  // _slot_helper.ts) from the `workerUrl` its callers give, each declared
  // with `new URL("..._worker.ts", import.meta.url)` where it is found.
  const worker =
    /\bnew Worker\( ?(?:options\.workerUrl \?\? )?(?:WORKER_URL|workerUrl)\b|\bnew URL\( ?"([^"]+_worker\.ts)", import\.meta\.url,? ?\)/g;
  let workers = 0;
  for (const m of text.matchAll(worker)) {
    if (m[1] !== undefined) loads.push({ file, url: m[1] });
    else workers++;
  }
  const count = (re: RegExp) => [...text.matchAll(re)].length;
  const unread: string[] = [];
  const calls = count(/\bloadModule\b(?! \}| ,|,)/g) -
    (file === "src/_load_module.ts" ? 1 : 0); // its definition
  const lazyCalls = loads.filter((l) => l.typed !== undefined).length;
  if (calls !== lazyCalls) {
    unread.push(`${file}: ${calls - lazyCalls} loadModule call(s) unread`);
  }
  const imports = count(/(?<!typeof )\bimport ?\(/g) -
    (file === "src/_load_module.ts" ? 1 : 0); // the one computed import
  if (imports !== 0) unread.push(`${file}: ${imports} import() call(s)`);
  const newWorkers = count(/\bnew Worker\b/g);
  if (newWorkers !== workers) {
    unread.push(`${file}: ${newWorkers - workers} new Worker call(s) unread`);
  }
  return { loads, unread };
}

/** `spec` resolved against `file`, relative to the repository. */
function resolved(file: string, spec: string): string {
  return new URL(spec, new URL(file, ROOT)).href.slice(ROOT.href.length);
}

Deno.test("compile: every module loaded outside the module graph is in src/preload.ts, which the CLI binary --includes with the workers, and each loadModule call is typed by the module it loads", async () => {
  const loads: Loaded[] = [];
  const unread: string[] = [];
  for (const file of [...await sources("src"), ...await sources("helper")]) {
    const found = loadsOf(
      file,
      code(await Deno.readTextFile(new URL(file, ROOT))),
    );
    loads.push(...found.loads);
    unread.push(...found.unread);
  }
  // Every module loaded later goes through loadModule: a literal
  // `import("./x.ts")` would put x.ts and everything behind it back into
  // every start-up graph (src/_load_module.ts says why).
  assert.deepEqual(unread, []);
  // The scan sees the calls at all.
  assert.ok(loads.length >= 20, `found only ${loads.length}`);
  for (const l of loads) {
    if (l.typed !== undefined) {
      assert.equal(l.typed, l.url, `${l.file}: type and URL differ`);
    }
  }
  const needed = [...new Set(loads.map((l) => resolved(l.file, l.url)))]
    .sort();
  // src/preload.ts names exactly the modules loaded on first use (the
  // worker runs in its own isolate and is not imported)...
  const preload = code(
    await Deno.readTextFile(new URL("src/preload.ts", ROOT)),
  );
  const preloaded = [...preload.matchAll(/^import "([^"]+)";$/gm)].map((m) =>
    resolved("src/preload.ts", m[1])
  ).sort();
  assert.deepEqual(
    preloaded,
    needed.filter((m) => !m.endsWith("_worker.ts")),
    "src/preload.ts and the loadModule calls differ",
  );
  // ...and the CLI binary embeds it and the workers.
  const cli = TARGETS.find((t) => t.name === "layerfs")!;
  assert.deepEqual(
    [...cli.include ?? []].sort(),
    [
      "src/preload.ts",
      ...needed.filter((m) => m.endsWith("_worker.ts")),
    ].sort(),
  );
  // The helper binary gets no read access to its own code: nothing it
  // loads may load a module on first use.
  const helper = await staticGraph("helper/main.ts");
  assert.ok(helper.has("src/mount/perform.ts"));
  assert.deepEqual(loads.filter((l) => helper.has(l.file)), []);
});
