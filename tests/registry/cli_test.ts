/**
 * `layerfs pull` and `layerfs push` as a user runs them, against the real
 * registry: `--json` one document, `--quiet` the id only, nothing extra on
 * a pipe, per-layer progress on a terminal (a pty from script(1)), errors
 * on one line; the pulled image is known to `images`, `create --image`
 * and `rmi`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { writeOciLayout } from "../image/_images.ts";
import { startRegistry } from "./_registry.ts";
import { skopeoPush, testImage } from "./_images.ts";

const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const dec = new TextDecoder();

async function layerfs(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", REGISTRY_AUTH_FILE: "/nonexistent/auth.json" },
  }).output();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("cli: pull and push", async () => {
  const reg = await startRegistry();
  const tmp = await Deno.makeTempDir({ prefix: "layerfs-cli-pull-" });
  const image = await testImage();
  try {
    await writeOciLayout(`${tmp}/src`, [{ image, ref: "v1" }]);
    await skopeoPush(`${tmp}/src`, "v1", `${reg.host}/cli/app:v1`);
    const root = ["--root", `${tmp}/s`, "--backend", "vfs"];
    const ref = `${reg.host}/cli/app:v1`;

    const pulled = await layerfs([...root, "--json", "pull", ref]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.equal(pulled.stderr, "");
    const doc = JSON.parse(pulled.stdout);
    assert.equal(doc.ref, ref);
    assert.equal(doc.id, `sha256:${image.configHex}`);
    assert.equal(doc.topLayer, image.chains[1]);
    assert.deepEqual(doc.layers, image.chains);

    const quiet = await layerfs([...root, "--quiet", "pull", ref]);
    assert.equal(quiet.stdout, `sha256:${image.configHex}\n`);
    const text = await layerfs([...root, "pull", ref]);
    assert.match(text.stdout, /^Pulled .* sha256:/);
    assert.equal(text.stderr, "", "no progress on a pipe");

    const images = await layerfs([...root, "images"]);
    assert.match(images.stdout, new RegExp(ref.replace(/\./g, "\\.")));
    const c = await layerfs([...root, "create", "ctr", "--image", ref, "--rw"]);
    assert.equal(c.code, 0, c.stderr);

    // On a terminal: a line per layer, like docker pull.
    const cmd = [Deno.execPath(), "run", "-A", MAIN, ...root, "pull", ref]
      .map((a) => `'${a}'`).join(" ");
    const pty = await new Deno.Command("script", {
      args: ["-qec", cmd, "/dev/null"],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    assert.ok(pty.success, dec.decode(pty.stderr));
    assert.match(
      dec.decode(pty.stdout),
      new RegExp(`${image.chains[0].slice(0, 12)}: Already exists`),
    );

    const pushed = await layerfs([
      ...root,
      "--json",
      "push",
      `${reg.host}/cli/copy:v1`,
      "--image",
      ref,
      "--compress",
      "zstd",
    ]);
    assert.equal(pushed.code, 0, pushed.stderr);
    const p = JSON.parse(pushed.stdout);
    assert.match(p.digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(p.layers.length, 2);

    const missing = await layerfs([...root, "pull", `${reg.host}/cli/nope:v1`]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim().split("\n").length, 1, missing.stderr);
    const bad = await layerfs([...root, "push", ref, "--compress", "xz"]);
    assert.equal(bad.code, 2, bad.stderr);
  } finally {
    await reg.stop();
    await Deno.remove(tmp, { recursive: true });
  }
});
