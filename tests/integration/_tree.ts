/**
 * Test helpers: describe a directory tree as plain data so two trees (a
 * mounted union view and a re-imported copy of it) can be compared exactly.
 *
 * @module
 */

/** One path of a tree, as compared by the tests. */
export interface TreeEntry {
  type: "file" | "dir" | "symlink" | "other";
  mode: number;
  uid: number;
  gid: number;
  /** File content (files), link target (symlinks), "" otherwise. */
  content: string;
}

/** Walks `root` (paths made by the test itself, so following nothing is fine) into a sorted map. */
export async function describeTree(
  root: string,
): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  async function walk(rel: string): Promise<void> {
    const names: string[] = [];
    for await (const e of Deno.readDir(root + rel)) names.push(e.name);
    names.sort();
    for (const name of names) {
      const p = `${rel}/${name}`;
      const st = await Deno.lstat(root + p);
      const base = {
        mode: (st.mode ?? 0) & 0o7777,
        uid: st.uid ?? -1,
        gid: st.gid ?? -1,
      };
      if (st.isSymlink) {
        out.set(p, {
          type: "symlink",
          ...base,
          content: await Deno.readLink(root + p),
        });
      } else if (st.isDirectory) {
        out.set(p, { type: "dir", ...base, content: "" });
        await walk(p);
      } else if (st.isFile) {
        out.set(p, {
          type: "file",
          ...base,
          content: await Deno.readTextFile(root + p),
        });
      } else {
        out.set(p, { type: "other", ...base, content: "" });
      }
    }
  }
  await walk("");
  return out;
}

/** Builds an uncompressed tar of `dir` with GNU tar (numeric owners, sorted, PAX). */
export async function gnuTar(dir: string): Promise<Uint8Array> {
  const out = await new Deno.Command("tar", {
    args: [
      "--format=pax",
      "--numeric-owner",
      "--sort=name",
      "--xattrs",
      "--xattrs-include=*",
      "-C",
      dir,
      "-cf",
      "-",
      ".",
    ],
    env: { LC_ALL: "C" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return out.stdout;
}

/** Lists the member names of a tar with GNU tar. */
export async function gnuTarList(tar: Uint8Array): Promise<string[]> {
  const child = new Deno.Command("tar", {
    // Names as they are, whatever the caller's locale.
    args: ["--quoting-style=literal", "-tf", "-"],
    env: { LC_ALL: "C" },
    stdin: "piped",
    stdout: "piped",
  })
    .spawn();
  const w = child.stdin.getWriter();
  await w.write(tar);
  await w.close();
  const out = await child.output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) =>
    l !== ""
  );
}

/** Collects a byte stream into one array. */
export async function collect(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
