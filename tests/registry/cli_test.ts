/**
 * `layerfs pull` and `layerfs push` as a user runs them, against the real
 * registry: `--json` one document, `--quiet` the id only, nothing extra on
 * a pipe, per-layer progress on a terminal (a pty from script(1)), errors
 * on one line; the pulled image is known to `images`, `create --image`
 * and `rmi`. SIGINT and SIGTERM in the middle of a pull (slowed by the
 * proxy) stop it with one line and exit 130/143, leaving a consistent store.
 *
 * @module
 */

import assert from "node:assert/strict";
import { sha, writeOciLayout } from "../image/_images.ts";
import { checkStore } from "../../src/cli/check.ts";
import { startRegistry } from "./_registry.ts";
import { type Proxy, startProxy } from "./_proxy.ts";
import { bigImage, skopeoPush, testImage } from "./_images.ts";

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

/**
 * Runs `fn` with a two-layer image pushed as `cli/big:v1` to a registry
 * behind the fault proxy (`top`: the top layer's blob path), in a temp dir;
 * stops both and removes the dir after.
 */
async function withBigImageBehindProxy(
  prefix: string,
  fn: (
    env: {
      proxy: Proxy;
      tmp: string;
      image: Awaited<ReturnType<typeof bigImage>>;
      top: string;
    },
  ) => Promise<void>,
): Promise<void> {
  const reg = await startRegistry();
  const proxy = startProxy(reg.url);
  const tmp = await Deno.makeTempDir({ prefix });
  const image = await bigImage(2, 2);
  try {
    await writeOciLayout(`${tmp}/src`, [{ image, ref: "v1" }]);
    await skopeoPush(`${tmp}/src`, "v1", `${reg.host}/cli/big:v1`);
    const top = `/blobs/sha256:${sha(image.layers[1].blob)}`;
    await fn({ proxy, tmp, image, top });
  } finally {
    await proxy.stop();
    await reg.stop();
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test("cli: SIGINT and SIGTERM stop a pull cleanly (one line, 130/143, store consistent)", async () => {
  await withBigImageBehindProxy("layerfs-cli-sig-", async (
    { proxy, tmp, image, top },
  ) => {
    // The top layer trickles out: 16 KiB every 50 ms (some seconds).
    proxy.fault = (req) =>
      req.method === "GET" && new URL(req.url).pathname.endsWith(top)
        ? { kind: "slow", chunk: 16 << 10, delayMs: 50 }
        : { kind: "forward" };
    for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
      const root = `${tmp}/s-${sig}`;
      const ref = `${proxy.host}/cli/big:v1`;
      proxy.slowSent = 0;
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          MAIN,
          "--root",
          root,
          "--backend",
          "vfs",
          "pull",
          ref,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1", REGISTRY_AUTH_FILE: "/nonexistent/auth.json" },
      }).spawn();
      const output = child.output();
      try {
        // Bounded: until the base layer is published and the top layer is
        // streaming (at most 600 polls of 50 ms).
        const published = () =>
          Deno.lstat(`${root}/layers/${image.chains[0]}`).then(
            () => true,
            () => false,
          );
        for (let i = 0; proxy.slowSent === 0 || !(await published()); i++) {
          assert.ok(i < 600, `${sig}: the pull never reached the top layer`);
          await new Promise((r) => setTimeout(r, 50));
        }
        child.kill(sig);
      } catch (e) {
        child.kill("SIGKILL");
        throw e;
      } finally {
        const out = await output;
        if (out.code !== code) {
          assert.fail(`${sig}: exit ${out.code}: ${dec.decode(out.stderr)}`);
        }
        assert.equal(
          dec.decode(out.stderr),
          `layerfs: pull of ${ref} interrupted\n`,
        );
        assert.equal(dec.decode(out.stdout), "");
      }
      // Consistent: no temps, no image; the completed base layer is kept
      // (and listed as unused until the next pull).
      const report = await checkStore(root);
      assert.deepEqual(
        report.problems.map((p) => [p.kind, p.subject]),
        [["unused-layer", image.chains[0]]],
        sig,
      );
      const images = await layerfs(["--root", root, "--json", "images"]);
      assert.deepEqual(JSON.parse(images.stdout).images, []);
      assert.deepEqual(await staging(root), []);
    }
  });
});

Deno.test("cli: a pull whose registry stalls fails with one line after --timeout, store consistent", async () => {
  await withBigImageBehindProxy("layerfs-cli-stall-", async (
    { proxy, tmp, top },
  ) => {
    // The top layer sends its first 100 KB, then nothing, every time.
    proxy.fault = (req) =>
      req.method === "GET" && new URL(req.url).pathname.endsWith(top)
        ? { kind: "stall", at: 100_000 }
        : { kind: "forward" };
    const root = `${tmp}/s`;
    const ref = `${proxy.host}/cli/big:v1`;
    const args = ["--root", root, "--backend", "vfs", "pull", ref];
    const bad = await layerfs([...args, "--timeout", "soon"]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /^layerfs: --timeout takes seconds/);
    const out = await layerfs([...args, "--timeout", "0.2"]);
    assert.equal(out.code, 1, out.stderr);
    assert.equal(out.stdout, "");
    const lines = out.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, out.stderr);
    assert.match(
      lines[0],
      /^layerfs: Registry [^ ]+: downloading [^ ]+ failed after 5 connections \(no byte of its reply for 0\.2 s: the connection stalled; check the network, then retry\); retry later$/,
    );
    const gets = proxy.seen.filter((s) => s.path.endsWith(top));
    assert.equal(gets.length, 5);
    const report = await checkStore(root);
    assert.deepEqual(
      report.problems.filter((p) => p.kind !== "unused-layer"),
      [],
    );
    const images = await layerfs(["--root", root, "--json", "images"]);
    assert.deepEqual(JSON.parse(images.stdout).images, []);
    assert.deepEqual(await staging(root), []);
  });
});

/** Entries of staging/ and temp files under images/. */
async function staging(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of ["staging", "images", "images/blobs/sha256"]) {
    try {
      for await (const e of Deno.readDir(`${root}/${d}`)) {
        if (d === "staging" || /^\.(spool|save|push)-|\.tmp-/.test(e.name)) {
          out.push(`${d}/${e.name}`);
        }
      }
    } catch { /* none */ }
  }
  return out;
}
