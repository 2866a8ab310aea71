/**
 * `layerfs load`, `images`, `rmi` and `create --image` as a subprocess;
 * SIGINT during a load from standard input.
 */
import assert from "node:assert/strict";
import { board } from "../../src/cli/_progress.ts";
import { layerProgress } from "../../src/cli/_image_commands.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import {
  baseLayer,
  buildImage,
  buildLayer,
  EXPECTED_TOP,
  simpleTree,
  topLayer,
  writeDocker25,
  writeOciLayout,
} from "./_images.ts";

import { layerfs as run, MAIN } from "../cli/_layerfs.ts";

const layerfs = (args: string[], stdin?: Uint8Array) => run(args, { stdin });
/** The escape character that starts a terminal control sequence. */
const ESC = String.fromCharCode(27);

privilegedTest(
  "cli: load (file, stdin, --json, --tag), images, create --image, rmi",
  async () => {
    await using tmp = await tempDir();
    const img = buildImage([
      buildLayer(await baseLayer(), "gzip"),
      buildLayer(await topLayer(), "zstd"),
    ]);
    await writeDocker25(`${tmp.path}/d.tar`, [{
      image: img,
      tags: ["cli/app:1"],
    }]);
    const root = ["--root", `${tmp.path}/s`];

    let r = await layerfs([...root, "load", `${tmp.path}/d.tar`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Loaded cli/app:1 sha256:${img.configHex}\n`);
    assert.equal(r.stderr, ""); // no progress when stderr is not a terminal
    // --parallel: a whole number of at least 1 (2 = usage error).
    r = await layerfs([
      ...root,
      "load",
      "--parallel",
      "0",
      `${tmp.path}/d.tar`,
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--parallel takes a whole number of at least 1/);
    r = await layerfs([
      ...root,
      "load",
      "--parallel",
      "1",
      `${tmp.path}/d.tar`,
    ]);
    assert.equal(r.code, 0, r.stderr);

    // Standard input, spooled; --json prints one document.
    r = await layerfs([
      ...root,
      "--json",
      "load",
      "--tag",
      "cli/app:stdin",
      "-",
    ], await Deno.readFile(`${tmp.path}/d.tar`));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      images: [{
        ref: "cli/app:stdin",
        id: `sha256:${img.configHex}`,
        topLayer: img.chains[1],
        layers: img.chains,
      }],
    });
    const spools = [...Deno.readDirSync(`${tmp.path}/s/images`)].filter((e) =>
      e.name.startsWith(".spool")
    );
    assert.deepEqual(spools, []);

    r = await layerfs([...root, "--json", "images"]);
    const list = JSON.parse(r.stdout).images;
    assert.deepEqual(list.map((i: { ref: string }) => i.ref), [
      "cli/app:1",
      "cli/app:stdin",
    ]);
    assert.equal(list[0].topLayer, img.chains[1]);
    assert.equal(
      list[0].size,
      img.layers[0].tar.length + img.layers[1].tar.length,
    );
    assert.equal(list[0].created, "2026-12-01T00:00:00Z");
    r = await layerfs([...root, "images"]);
    assert.match(
      r.stdout,
      /^REF\s+ID\s+TOP LAYER\s+SIZE\s+CREATED\ncli\/app:1\s+[0-9a-f]{12}\s+[0-9a-f]{12}\s+/,
    );

    // A container layer on the image.
    r = await layerfs([
      ...root,
      "create",
      "ctr",
      "--rw",
      "--image",
      "cli/app:1",
    ]);
    assert.equal(r.code, 0, r.stderr);
    r = await layerfs([...root, "mount", "ctr"]);
    assert.equal(r.code, 0, r.stderr);
    const tree = await simpleTree(r.stdout.trim());
    assert.deepEqual(tree, EXPECTED_TOP);
    assert.equal((await layerfs([...root, "umount", "ctr"])).code, 0);

    // save, then load into another store.
    r = await layerfs([
      ...root,
      "--json",
      "save",
      "cli/app:1",
      "-o",
      `${tmp.path}/saved.tar`,
      "--format",
      "oci",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const saved = JSON.parse(r.stdout).images[0];
    assert.equal(saved.ref, "cli/app:1");
    assert.equal(saved.storeId, `sha256:${img.configHex}`);
    r = await layerfs([
      "--root",
      `${tmp.path}/s2`,
      "load",
      `${tmp.path}/saved.tar`,
    ]);
    assert.equal(r.stdout, `Loaded cli/app:1 ${saved.id}\n`);
    r = await layerfs([...root, "save", "cli/app:1"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^layerfs: Pass -o FILE/);

    // rmi: the first name untags; the last one is refused while ctr sits
    // on the image; with --force the image goes and the layers stay.
    r = await layerfs([...root, "rmi", "cli/app:stdin"]);
    assert.equal(r.stdout, "Untagged: cli/app:stdin\n");
    r = await layerfs([...root, "rmi", "cli/app:1"]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'layerfs: Cannot remove image cli/app:1: layer "ctr" is built on it; remove it first ("layerfs rm ctr") or pass --force to keep the layers it needs\n',
    );
    r = await layerfs([...root, "--json", "rmi", "--force", "cli/app:1"]);
    assert.deepEqual(JSON.parse(r.stdout), {
      removed: [{
        ref: "cli/app:1",
        untagged: ["cli/app:1"],
        deleted: `sha256:${img.configHex}`,
        removedLayers: [],
      }],
      failed: [],
    });
    assert.equal((await layerfs([...root, "rm", "ctr"])).code, 0);
    r = await layerfs([...root, "load", `${tmp.path}/d.tar`]);
    r = await layerfs([...root, "rmi", "cli/app:1"]);
    assert.equal(
      r.stdout,
      `Untagged: cli/app:1\nDeleted: sha256:${img.configHex}\n` +
        `Removed layer: ${img.chains[1]}\nRemoved layer: ${img.chains[0]}\n`,
    );

    // Errors: one line, no stack; --json one document.
    r = await layerfs([...root, "rmi", "nope:1"]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'layerfs: No image "nope:1" in this store; run "layerfs images" to see the images\n',
    );
    r = await layerfs([
      ...root,
      "--json",
      "create",
      "c2",
      "--rw",
      "--image",
      "nope:1",
    ]);
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stdout).error.name, "ImageNotFound");
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "x:1" }]);
    await Deno.writeTextFile(`${tmp.path}/oci/index.json`, "{");
    r = await layerfs([...root, "--json", "load", `${tmp.path}/oci`]);
    assert.equal(r.code, 1);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.error.name, "InvalidImage");
    assert.match(
      r.stderr,
      /^layerfs: Cannot load image .*index\.json is not a JSON object; .*\n$/,
    );
    r = await layerfs([...root, "--json", "ls"]);
    assert.deepEqual(JSON.parse(r.stdout), { layers: [] });
    r = await layerfs([...root, "check"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  },
);

privilegedTest(
  "cli: load shows per-layer progress on a terminal (a pty from script(1))",
  async () => {
    await using tmp = await tempDir();
    const img = buildImage([
      buildLayer(await baseLayer(), "gzip"),
      buildLayer(await topLayer(), "none"),
    ]);
    await writeOciLayout(`${tmp.path}/oci`, [{ image: img, ref: "tty/app:1" }]);
    const cmd = [
      Deno.execPath(),
      "run",
      "-A",
      MAIN,
      "--root",
      `${tmp.path}/s`,
      "load",
      `${tmp.path}/oci`,
    ]
      .map((a) => `'${a}'`).join(" ");
    const inPty = async () => {
      const out = await new Deno.Command("script", {
        args: ["-qec", cmd, "/dev/null"],
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      return new TextDecoder().decode(out.stdout);
    };
    let text = await inPty();
    // A line per layer, as pull draws them: bytes of the blob's size, then done.
    const line = (i: number, what: string) =>
      new RegExp(
        `tty/app:1 layer ${i + 1}/2 ${img.chains[i].slice(0, 12)}: ${what}`,
      );
    // (How many "Loading" frames are drawn depends on timing: each is
    // throttled; loadProgressLines is tested below as a function.)
    for (const i of [0, 1]) assert.match(text, line(i, "Load complete"));
    // The two layers' lines are redrawn in place (cursor up), not one line
    // flipping between them.
    assert.ok(text.includes("\x1b[2A"));
    assert.match(text, new RegExp(`Loaded tty/app:1 sha256:${img.configHex}`));
    text = await inPty();
    assert.match(text, line(0, "Already exists"));
  },
);

Deno.test("cli: SIGINT during load from standard input stops it cleanly", async () => {
  await using tmp = await tempDir();
  const img = buildImage([buildLayer(await baseLayer(), "gzip")]);
  await writeDocker25(`${tmp.path}/d.tar`, [{ image: img, tags: ["sig:1"] }]);
  const archive = await Deno.readFile(`${tmp.path}/d.tar`);
  const root = `${tmp.path}/s`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--root", root, "--backend", "vfs", "load", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const output = child.output();
  const w = child.stdin.getWriter();
  let out: Deno.CommandOutput;
  try {
    // Half the archive, then nothing more: the load waits on its stdin.
    await w.write(archive.subarray(0, archive.length >> 1));
    const spooling = () => {
      try {
        return [...Deno.readDirSync(`${root}/images`)].some((e) =>
          e.name.startsWith(".spool-")
        );
      } catch {
        return false;
      }
    };
    // Bounded: at most 600 polls of 50 ms.
    for (let i = 0; !spooling(); i++) {
      assert.ok(i < 600, "the load never started spooling");
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGINT");
    out = await output;
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  } finally {
    await w.close().catch(() => {});
    await output.catch(() => {});
  }
  const dec = new TextDecoder();
  assert.equal(out.code, 130, dec.decode(out.stderr));
  assert.equal(
    dec.decode(out.stderr),
    "layerfs: load of standard input interrupted\n",
  );
  // The load made this store and completed no layer: the store goes too.
  assert.throws(() => Deno.lstatSync(root), Deno.errors.NotFound);
});

Deno.test("cli: load's progress lines: one per layer of each image, bytes of the blob's size", () => {
  let text = "";
  const show = layerProgress(board(true, (t) => text += t));
  const base = { image: "a:1", layers: 2, total: 2048 };
  show({ ...base, layer: 1, id: "1".repeat(64), bytes: 1024, state: "apply" });
  show({ ...base, layer: 2, id: "2".repeat(64), bytes: 0, state: "reused" });
  show({ ...base, layer: 1, id: "1".repeat(64), bytes: 4096, state: "done" });
  show({
    ...base,
    image: "b:1",
    layer: 1,
    id: "3".repeat(64),
    bytes: 5,
    state: "done",
  });
  const frames = text.split(new RegExp(`${ESC}\\[\\d+A`));
  const last = frames.at(-1)!.split("\n").map((l) => l.replace("\r\x1b[K", ""));
  assert.deepEqual(last, [
    `a:1 layer 1/2 ${"1".repeat(12)}: Load complete`,
    `a:1 layer 2/2 ${"2".repeat(12)}: Already exists`,
    `b:1 layer 1/2 ${"3".repeat(12)}: Load complete`,
    "",
  ]);
  assert.match(text, /a:1 layer 1\/2 1{12}: Loading 1\.0 KiB \/ 2\.0 KiB\n/);
});

privilegedTest(
  "cli: layer arguments take the 12-hex ids images shows, and an image for its top layer where a layer is read",
  async () => {
    await using tmp = await tempDir();
    const img = buildImage([
      buildLayer(await baseLayer()),
      buildLayer(await topLayer()),
    ]);
    await writeDocker25(`${tmp.path}/d.tar`, [{
      image: img,
      tags: ["arg/app:1"],
    }]);
    const root = ["--root", `${tmp.path}/s`, "--backend", "vfs"];
    let r = await layerfs([...root, "load", `${tmp.path}/d.tar`]);
    assert.equal(r.code, 0, r.stderr);
    const [base, top] = img.chains;
    // The short id from `images`, and the image itself.
    r = await layerfs([...root, "--json", "mount", top.slice(0, 12)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).id, top);
    r = await layerfs([...root, "--json", "umount", "arg/app:1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).id, top);
    r = await layerfs([
      ...root,
      "changes",
      "arg/app:1",
      "--parent",
      base.slice(0, 12),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      (await layerfs([...root, "changes", top, "--parent", base])).stdout,
    );
    // create --parent takes a prefix too; a new id is never resolved.
    r = await layerfs([
      ...root,
      "create",
      "ctr",
      "--rw",
      "--parent",
      top.slice(0, 8),
    ]);
    assert.equal(r.code, 0, r.stderr);
    r = await layerfs([...root, "--json", "ls"]);
    const ctr = JSON.parse(r.stdout).layers.find((l: { id: string }) =>
      l.id === "ctr"
    );
    assert.equal(ctr.parent, top);
    // Refused: a prefix shorter than 4, an image that is not there, a
    // prefix two layers share.
    r = await layerfs([...root, "mount", top.slice(0, 3)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does not exist/);
    r = await layerfs([...root, "mount", "no/such:1"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /names no layer, and no image of this store/);
    const twin = `${top.slice(0, 12)}${"0".repeat(52)}`;
    r = await layerfs([...root, "create", twin]);
    assert.equal(r.code, 0, r.stderr);
    r = await layerfs([...root, "mount", top.slice(0, 12)]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /2 layers start with [0-9a-f]{12} .*give more of the id/,
    );
    // rm with a shared prefix is a usage error before anything is removed.
    r = await layerfs([...root, "rm", "ctr", top.slice(0, 12)]);
    assert.equal(r.code, 2, r.stderr);
    r = await layerfs([...root, "exists", "ctr"]);
    assert.equal(r.code, 0, "ctr was not removed");
  },
);
