/**
 * `deno task demo`: layerfs end to end on a temporary store, with nothing set
 * up beforehand. overlay as root, vfs otherwise.
 *
 * 1. generate a base layer tar and a child layer tar (the child deletes a
 *    file with a whiteout and replaces a directory's content with an opaque
 *    marker) with layerfs's own TarWriter;
 * 2. import both with applyDiff, add a container's read-write layer on top;
 * 3. mount the top, show `layerfs ls`, the merged tree, `layerfs changes`, and
 *    the listing of `layerfs diff`;
 * 4. clean up (unmount, delete the store).
 *
 * @module
 */

import { openStore } from "../mod.ts";
import {
  readTar,
  type TarHeader,
  tarHeader,
  TarWriter,
} from "../src/archive/tar/mod.ts";
import { processIo, runCli } from "../src/cli/main.ts";

const enc = new TextEncoder();
const started = performance.now();

function header(
  name: string,
  type: TarHeader["type"],
  extra: Partial<TarHeader> = {},
): TarHeader {
  return tarHeader({ name, type, mtime: 1_700_000_000, ...extra });
}

/** Builds a tar from [name, content] pairs; names ending in "/" are dirs, "-> x" symlinks. */
async function makeTar(entries: [string, string?][]): Promise<Uint8Array> {
  const w = new TarWriter();
  const out = new Response(w.readable).bytes();
  for (const [name, content] of entries) {
    if (name.endsWith("/")) await w.add(header(name, "dir"));
    else if (content?.startsWith("-> ")) {
      await w.add(
        header(name, "symlink", { linkname: content.slice(3), mode: 0o777 }),
      );
    } else {
      const body = enc.encode(content ?? "");
      await w.add(header(name, "file", { size: body.length }), body);
    }
  }
  await w.close();
  return await out;
}

function title(s: string): void {
  console.log(`\n\x1b[1m== ${s}\x1b[0m`);
}

/** Prints a directory tree (sorted), marking dirs with "/" and symlinks with "->". */
async function tree(dir: string, prefix = ""): Promise<void> {
  const entries = await Array.fromAsync(Deno.readDir(dir));
  entries.sort((a, b) => a.name < b.name ? -1 : 1);
  for (const e of entries) {
    const path = `${dir}/${e.name}`;
    if (e.isSymlink) {
      console.log(`${prefix}${e.name} -> ${await Deno.readLink(path)}`);
    } else if (e.isDirectory) {
      console.log(`${prefix}${e.name}/`);
      await tree(path, prefix + "  ");
    } else {
      const text = (await Deno.readTextFile(path)).split("\n")[0];
      console.log(`${prefix}${e.name}  "${text}"`);
    }
  }
}

const backend = Deno.uid() === 0 ? "overlay" : "vfs";
const root = await Deno.makeTempDir({ prefix: "layerfs-demo-" });
const cli = (...args: string[]) =>
  runCli(["--root", root, "--backend", backend, ...args], processIo());

try {
  console.log(
    `layerfs demo: temporary store ${root}, backend ${backend}${
      backend === "vfs" ? " (not root: no mounts, full copies)" : ""
    }`,
  );
  const store = await openStore({ root, backend });
  try {
    const base = await makeTar([
      ["etc/"],
      ["etc/hostname", "demo\n"],
      ["etc/passwd", "root:x:0:0::/root:/bin/sh\n"],
      ["var/"],
      ["var/cache/"],
      ["var/cache/old1", "stale 1\n"],
      ["var/cache/old2", "stale 2\n"],
      ["usr/"],
      ["usr/bin/"],
      ["usr/bin/hello", "#!/bin/sh\necho hello\n"],
      ["bin", "-> usr/bin"],
    ]);
    const child = await makeTar([
      ["etc/"],
      ["etc/.wh.passwd"], // whiteout: the child deletes /etc/passwd
      ["etc/hostname", "demo-v2\n"], // modified
      ["var/"],
      ["var/cache/"],
      ["var/cache/.wh..wh..opq"], // opaque: the parent's var/cache content is hidden
      ["var/cache/fresh", "new cache\n"],
      ["app/"],
      ["app/main.txt", "the app\n"],
    ]);

    title(`apply base (${base.length} byte tar) and child (parent base)`);
    console.log("base size:", await store.applyDiff("base", undefined, base));
    console.log("child size:", await store.applyDiff("child", "base", child));
    await store.createReadWrite("ctr", "child");
    console.log('created read-write layer "ctr" on child');

    title('mount the top: store.get("ctr")');
    const view = await store.get("ctr");
    console.log(view);
    await Deno.writeTextFile(
      `${view}/app/log.txt`,
      "written in the container\n",
    );

    title("layerfs ls");
    await cli("ls");

    title(
      "merged tree of ctr (passwd gone, var/cache replaced, hostname changed)",
    );
    await tree(view);

    title("layerfs changes child");
    await cli("changes", "child");
    title("layerfs changes ctr");
    await cli("changes", "ctr");

    title("layerfs diff child | tar -t (OCI whiteouts in the tar)");
    for await (const e of readTar(store.diff("child"))) {
      const h = e.header;
      console.log(
        `${h.type.padEnd(7)} ${h.mode.toString(8).padStart(4, "0")} ${h.name}${
          h.type === "symlink" ? ` -> ${h.linkname}` : ""
        }`,
      );
      await e.body.cancel();
    }

    await store.put("ctr");
    await store.cleanup();
  } finally {
    store.close();
  }
} finally {
  await Deno.remove(root, { recursive: true });
  title(
    `cleaned up ${root} in ${
      ((performance.now() - started) / 1000).toFixed(2)
    } s`,
  );
}
