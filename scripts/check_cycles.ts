/**
 * `deno task check` part: fails when the module graph of `mod.ts`, `src/` and
 * `helper/` has an import cycle, runtime or type-only (Deno std keeps its
 * packages acyclic the same way: `_tools/check_circular_package_dependencies.ts`).
 * A cycle means two modules cannot be understood, tested or moved apart; a
 * type-only one usually means shared types live next to an implementation.
 *
 * Prints each strongly connected component of files with one concrete cycle
 * through it (`a.ts -> b.ts -> a.ts`), and exits 1 if there is any.
 *
 * Usage: `deno run --allow-read --allow-run scripts/check_cycles.ts [dir]`
 * (dir: the repository root, default the current directory).
 *
 * @module
 */

/** One module of `deno info --json`. */
interface InfoModule {
  specifier: string;
  dependencies?: {
    code?: { specifier: string };
    type?: { specifier: string };
  }[];
}

/** The files the check covers: `mod.ts` and every `.ts` file of `src/` and `helper/`. */
function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
      throw e;
    }
    for (const e of entries) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) walk(p);
      else if (e.isFile && e.name.endsWith(".ts")) out.push(p);
    }
  };
  walk(`${root}/src`);
  walk(`${root}/helper`);
  out.push(`${root}/mod.ts`);
  return out.map((p) => Deno.realPathSync(p)).sort();
}

/** Runs `deno info --json` on `file` and adds its local edges to `graph`. */
async function addGraph(
  file: string,
  graph: Map<string, Set<string>>,
): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", file],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `deno info --json ${file} failed: ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: InfoModule[];
  };
  for (const m of info.modules) {
    if (!m.specifier.startsWith("file://")) continue;
    const from = decodeURIComponent(new URL(m.specifier).pathname);
    const to = graph.get(from) ?? new Set<string>();
    graph.set(from, to);
    for (const d of m.dependencies ?? []) {
      for (const dep of [d.code, d.type]) {
        if (dep?.specifier.startsWith("file://")) {
          to.add(decodeURIComponent(new URL(dep.specifier).pathname));
        }
      }
    }
  }
}

/** Strongly connected components of `graph` restricted to `nodes` (Tarjan, iterative). */
export function components(
  graph: Map<string, Set<string>>,
  nodes: Set<string>,
): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  let next = 0;
  const succ = (v: string) =>
    [...(graph.get(v) ?? [])].filter((w) => nodes.has(w));
  for (const start of [...nodes].sort()) {
    if (index.has(start)) continue;
    const work: [string, string[], number][] = [[start, succ(start), 0]];
    index.set(start, next);
    low.set(start, next++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const top = work[work.length - 1];
      const [v, ws] = top;
      if (top[2] < ws.length) {
        const w = ws[top[2]++];
        if (!index.has(w)) {
          index.set(w, next);
          low.set(w, next++);
          stack.push(w);
          onStack.add(w);
          work.push([w, succ(w), 0]);
        } else if (onStack.has(w)) {
          low.set(v, Math.min(low.get(v)!, index.get(w)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const u = work[work.length - 1][0];
        low.set(u, Math.min(low.get(u)!, low.get(v)!));
      }
      if (low.get(v) === index.get(v)) {
        const comp: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          comp.push(w);
        } while (w !== v);
        const selfLoop = graph.get(v)?.has(v) ?? false;
        if (comp.length > 1 || selfLoop) out.push(comp.sort());
      }
    }
  }
  return out;
}

/** A shortest cycle through `from` inside `comp` (breadth-first). */
export function cycleThrough(
  graph: Map<string, Set<string>>,
  comp: string[],
  from: string,
): string[] {
  const inComp = new Set(comp);
  const prev = new Map<string, string>();
  const queue = [from];
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i];
    for (const w of graph.get(v) ?? []) {
      if (!inComp.has(w)) continue;
      if (w === from) {
        const path = [from];
        for (let x = v; x !== from; x = prev.get(x)!) path.push(x);
        path.push(from);
        return [from, ...path.slice(1, -1).reverse(), from];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [from];
}

if (import.meta.main) {
  const root = Deno.realPathSync(Deno.args[0] ?? ".");
  const files = listFiles(root);
  const nodes = new Set(files);
  const graph = new Map<string, Set<string>>();
  // One `deno info` per file not yet reached from an earlier root: entry points
  // (mod.ts, the CLI, the helper) pull in most files at once.
  for (const f of files) if (!graph.has(f)) await addGraph(f, graph);
  const rel = (p: string) => p.slice(root.length + 1);
  const comps = components(graph, nodes);
  for (const comp of comps) {
    console.log(
      `Import cycle among ${comp.length} files: ${comp.map(rel).join(", ")}`,
    );
    console.log(
      `  for example: ${
        cycleThrough(graph, comp, comp[0]).map(rel).join(" -> ")
      }`,
    );
  }
  if (comps.length > 0) {
    console.error(
      `${comps.length} import cycle(s) found; move shared types to a types-only module or invert the dependency`,
    );
    Deno.exit(1);
  }
  console.log(`No import cycles among ${files.length} files.`);
}
