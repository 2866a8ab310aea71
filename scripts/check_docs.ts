/**
 * `deno task check` step: every runnable JSDoc example asserts what it shows.
 *
 * `deno test --doc` (part of `deno task test`) runs each ```ts block of a
 * doc comment; a block that only prints proves nothing, and its stated
 * output goes stale unnoticed. So a runnable block must call an assertion
 * (`assert`, `assert.equal`, `assertEquals`, ...). Blocks marked
 * ```ts ignore are not run (they need root, a real store path or a network)
 * and are exempt; the script lists how many there are.
 *
 * Usage: `deno run --allow-read scripts/check_docs.ts [DIR|FILE]...`
 * (default: mod.ts src helper). Exits 1 and names each offending block.
 *
 * @module
 */

const roots = Deno.args.length ? Deno.args : ["mod.ts", "src", "helper"];

async function* files(path: string): AsyncGenerator<string> {
  const st = await Deno.stat(path);
  if (st.isFile) {
    if (path.endsWith(".ts")) yield path;
    return;
  }
  const names = (await Array.fromAsync(Deno.readDir(path))).map((e) => e.name)
    .sort();
  for (const n of names) yield* files(`${path}/${n}`);
}

interface Block {
  file: string;
  line: number;
  ignored: boolean;
  asserts: boolean;
}

/** The fenced ts blocks inside `/** ... *\/` comments of `text`. */
export function docBlocks(file: string, text: string): Block[] {
  const out: Block[] = [];
  const lines = text.split("\n");
  let inDoc = false;
  let block: Block | undefined;
  let body = "";
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (!inDoc && raw.trimStart().startsWith("/**")) inDoc = true;
    if (inDoc) {
      const l = raw.replace(/^\s*\*\s?/, "").trimEnd();
      const fence = l.match(/^```(\w*)\s*(.*)$/);
      if (fence && !block && (fence[1] === "ts" || fence[1] === "typescript")) {
        block = {
          file,
          line: i + 1,
          ignored: /\bignore\b/.test(fence[2]),
          asserts: false,
        };
        body = "";
      } else if (fence && block && fence[1] === "") {
        block.asserts = /\bassert\w*\s*[.(]/.test(body);
        out.push(block);
        block = undefined;
      } else if (block) body += l + "\n";
    }
    if (inDoc && raw.includes("*/")) {
      inDoc = false;
      block = undefined;
    }
  }
  return out;
}

if (import.meta.main) {
  let bad = 0;
  let ignored = 0;
  let run = 0;
  for (const root of roots) {
    for await (const f of files(root)) {
      for (const b of docBlocks(f, await Deno.readTextFile(f))) {
        if (b.ignored) {
          ignored++;
          continue;
        }
        run++;
        if (!b.asserts) {
          bad++;
          console.error(
            `${b.file}:${b.line}: this example runs but asserts nothing; ` +
              "assert what it shows (node:assert/strict), or mark it `ts ignore` if it cannot run",
          );
        }
      }
    }
  }
  console.log(
    `doc examples: ${run} run (${run - bad} assert), ${ignored} marked ignore`,
  );
  if (bad) Deno.exit(1);
}
