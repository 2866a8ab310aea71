/**
 * Start-up: what a process loads before it does anything (README
 * "Start-up"). Deno's cost of loading a module grows with its emitted size,
 * and the first use of a `node:` built-in sets up Node compatibility, so
 * importing mod.ts, or running `layerfs --version`, must not load the code
 * of operations it does not call. These tests read the static module graph
 * (`deno info --json`: code edges that are not `import()`) and fail when an
 * eager import pulls such code back in; they measure no time.
 */
import assert from "node:assert/strict";
import * as mod from "../mod.ts";
import { openStore } from "../mod.ts";
import * as images from "../src/image/mod.ts";
import * as registry from "../src/registry/mod.ts";
import { tempDir } from "./_privileged.ts";
import { denoJson, moduleInfo, ROOT, staticGraph } from "./_module_graph.ts";
import {
  buildImage,
  buildLayer,
  layerTar,
  writeOciLayout,
} from "./image/_images.ts";

/** The members of `graph` that start with one of `prefixes`. */
function loaded(graph: Set<string>, prefixes: string[]): string[] {
  return [...graph].filter((m) => prefixes.some((p) => m.startsWith(p)))
    .sort();
}

Deno.test("startup: mod.ts loads no node: built-in, store, mount, image, registry transport, decoder, tar encoder or archive-export code at import", async () => {
  const g = await staticGraph("mod.ts");
  // The graph is read at all: what applyTar and packDir need is in it.
  assert.ok(g.has("src/archive/extract/apply_tar.ts"));
  assert.ok(g.has("src/archive/export/pack_dir.ts"));
  assert.deepEqual(loaded(g, ["node:"]), []);
  assert.deepEqual(
    loaded(g, [
      "src/image/load.ts",
      "src/image/images.ts",
      "src/image/image_store.ts",
      "src/image/prune.ts",
      "src/image/save.ts",
      "src/image/_store_image.ts",
      "src/image/_verify.ts",
      "src/registry/pull.ts",
      "src/registry/push.ts",
      // The registry transport loads on a client's first request, the
      // decoders on the first decompression (src/archive/compress/lazy.ts).
      "src/registry/_transport.ts",
      "src/registry/_challenge.ts",
      "src/archive/compress/decompress.ts",
      "src/archive/compress/tar_source.ts",
      "src/archive/compress/_gunzip_isal.ts",
      "src/archive/compress/_zstd_frames.ts",
      "src/archive/layer.ts",
      "src/archive/tarsplit/",
      "src/archive/changes/layer_",
      "src/archive/changes/_tree_changes.ts",
      "src/archive/changes/_upper_changes.ts",
      "src/archive/export/layer_tar.ts",
      // packDir loads the walk and the pump on its first read, TarWriter
      // the header encoder on its first add.
      "src/archive/export/_walk.ts",
      "src/archive/export/_tar_pump.ts",
      "src/archive/export/_file_prefetch.ts",
      "src/archive/tar/encode.ts",
      "src/store/_chain.ts",
      // The store and mounting load on the first openStore/mount call.
      "src/store/store.ts",
      "src/store/open.ts",
      "src/backends/",
      "src/mount/perform.ts",
      "src/mount/mounter.ts",
      "src/cli/",
      "helper/",
    ]),
    [],
  );
});

Deno.test("startup: the CLI's entry loads no node: built-in, and no store, image, registry or archive code before a command runs", async () => {
  const g = await staticGraph("src/cli/main.ts");
  assert.ok(g.has("src/cli/_spec.ts"));
  // Not even for argument parsing (src/cli/_argv.ts): a static node:
  // import sets up Node compatibility in every run. Nor does what a
  // command loads (a store command's graph).
  assert.deepEqual(loaded(g, ["node:"]), []);
  const commands = await staticGraph("src/cli/_commands.ts");
  assert.ok(commands.has("src/store/store.ts"));
  assert.deepEqual(loaded(commands, ["node:"]), []);
  assert.deepEqual(
    loaded(g, [
      "src/store/",
      "src/image/load.ts",
      "src/image/save.ts",
      "src/image/images.ts",
      "src/registry/client.ts",
      "src/registry/pull.ts",
      "src/registry/push.ts",
      "src/registry/auth_file.ts",
      "src/archive/extract/",
      "src/archive/export/",
      "src/archive/compress/",
      "src/mount/",
      "src/cli/_commands.ts",
      "src/cli/check.ts",
      "helper/",
    ]),
    [],
  );
});

/** The names `path` exports, types included (`deno doc --json`). */
async function exportedNames(path: string): Promise<Set<string>> {
  const doc = await denoJson("doc", path) as {
    nodes: Record<string, { symbols: { name: string }[] }>;
  };
  return new Set(
    Object.values(doc.nodes).flatMap((n) => n.symbols.map((s) => s.name)),
  );
}

Deno.test("startup: mod.ts exports every name src/image/mod.ts and src/registry/mod.ts export", async () => {
  // Values at run time, types from the docs: mod.ts lists these names one by
  // one (so the heavy ones can come from src/*/lazy.ts) and must not fall
  // behind when a module gains an export.
  const values = new Set(Object.keys(mod));
  assert.deepEqual(
    [...Object.keys(images), ...Object.keys(registry)].filter((k) =>
      !values.has(k)
    ),
    [],
  );
  const ours = await exportedNames("mod.ts");
  const theirs = [
    ...await exportedNames("src/image/mod.ts"),
    ...await exportedNames("src/registry/mod.ts"),
  ];
  assert.deepEqual(theirs.filter((n) => !ours.has(n)), []);
});

Deno.test("startup: mod.ts's lazy image entry points give what their implementations give", async () => {
  await using tmp = await tempDir();
  const image = buildImage([
    buildLayer(await layerTar([{ name: "hello", content: "hi\n" }]), "gzip"),
  ]);
  await writeOciLayout(`${tmp.path}/oci`, [{ image, ref: "hello:1" }]);
  const store = await openStore({ root: `${tmp.path}/store`, backend: "vfs" });
  try {
    const [img] = await mod.loadImage(store, `${tmp.path}/oci`);
    assert.equal(img.ref, "hello:1");
    assert.deepEqual(
      await mod.listImages(store),
      await images.listImages(store),
    );
    assert.deepEqual(
      await mod.findImage(store, "hello:1"),
      await images.findImage(store, "hello:1"),
    );
    const [saved] = await mod.saveImage(
      store,
      ["hello:1"],
      `${tmp.path}/out.tar`,
    );
    assert.equal(saved.ref, "hello:1");
    const removed = await mod.removeImage(store, "hello:1");
    assert.equal(removed.deleted, img.id);
    assert.deepEqual(await images.listImages(store), []);
  } finally {
    store.close();
  }
});

Deno.test("startup: mod.ts and the CLI put no module behind a lazy entry point into the start-up graph, dynamic edges included", async () => {
  // `deno info` lists dynamic imports with literal specifiers too, and Deno
  // reads every module behind them at start (src/_load_module.ts): the lazy
  // entry points must use computed specifiers, so these stay out.
  for (const entry of ["mod.ts", "src/cli/main.ts"]) {
    const { modules } = await moduleInfo(entry);
    const dynamic = modules.flatMap((m) =>
      (m.dependencies ?? []).filter((d) => d.isDynamic && d.code).map((d) =>
        d.code!.specifier
      )
    ).filter((s) => s.startsWith(ROOT.href));
    assert.deepEqual(dynamic, [], entry);
  }
});

Deno.test("startup: a lazily loaded module that Deno may not read is a PermissionRequired naming the flag; with it, or with src/preload.ts imported, the call works", async () => {
  const script = `
    import { decompress, PermissionRequired } from ${
    JSON.stringify(new URL("mod.ts", ROOT).href)
  };
    const bytes = await new Response(
      new Blob(["hi"]).stream().pipeThrough(new CompressionStream("gzip")),
    ).bytes();
    let cancelled = "no";
    const gz = new ReadableStream({
      start(c) { c.enqueue(bytes); c.close(); },
      cancel(e) { cancelled = e.constructor.name; },
    });
    try {
      const { stream } = await decompress(gz);
      console.log("ok", await new Response(stream).text());
    } catch (e) {
      // A failed load cancels the input, as the decoder does on its errors.
      console.log(e instanceof PermissionRequired ? "denied" : "other", cancelled, e.flag, e.message);
    }
  `;
  await using tmp = await tempDir();
  await Deno.writeTextFile(`${tmp.path}/s.ts`, script);
  const run = async (...flags: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-check", ...flags, `${tmp.path}/s.ts`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout).trim();
  };
  const repo = new URL(".", ROOT).pathname.replace(/\/$/, "");
  const denied = await run();
  assert.equal(
    denied,
    `denied PermissionRequired --allow-read=${repo} layerfs loads ${repo}/src/archive/compress/decompress.ts on first use and may not: run with --allow-read=${repo} (or -A); a program that imports layerfs can instead import its preload.ts at start-up`,
  );
  assert.equal(await run(`--allow-read=${repo}`), "ok hi");
  // With src/preload.ts imported, the module is in the start-up graph and
  // needs no permission.
  await Deno.writeTextFile(
    `${tmp.path}/s.ts`,
    `import ${
      JSON.stringify(new URL("src/preload.ts", ROOT).href)
    };\n${script}`,
  );
  assert.equal(await run(), "ok hi");
  // What the loaded module throws at its top level (here: env access it
  // lacks) is not a refused load, and passes through as it is.
  await Deno.writeTextFile(
    `${tmp.path}/s.ts`,
    `import { loadModule } from ${
      JSON.stringify(new URL("src/_load_module.ts", ROOT).href)
    };
    try {
      await loadModule(new URL(${
      JSON.stringify(new URL("tests/_top_level_env.ts", ROOT).href)
    }));
      console.log("loaded");
    } catch (e) {
      console.log(e.constructor.name, e.message.split(",")[0]);
    }`,
  );
  assert.equal(
    await run(`--allow-read=${repo}`),
    'NotCapable Requires env access to "HOME"',
  );
  assert.equal(
    await run(),
    `PermissionRequired layerfs loads ${repo}/tests/_top_level_env.ts on first use and may not: run with --allow-read=${repo} (or -A); a program that imports layerfs can instead import its preload.ts at start-up`,
  );
});
