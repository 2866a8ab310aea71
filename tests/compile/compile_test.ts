/**
 * `deno task compile` builds both binaries and they run. deno compile needs
 * denort (downloaded from dl.deno.land, or DENORT_BIN): when neither is
 * available the test is ignored and says why; the script's own failure path
 * (one line, exit 1) is tested either way.
 */
import assert from "node:assert/strict";
import { tempDir } from "../_privileged.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const VERSION = Deno.version.deno;

/** Why compile cannot work here, or undefined when it can (decided in ~3 s at most). */
async function compileUnavailable(): Promise<string | undefined> {
  const denort = Deno.env.get("DENORT_BIN");
  if (denort) {
    try {
      await Deno.stat(denort);
      return undefined;
    } catch {
      return `DENORT_BIN=${denort} does not exist`;
    }
  }
  const home = Deno.env.get("HOME") ?? "/root";
  const cache = Deno.env.get("DENO_DIR") ?? `${home}/.cache/deno`;
  try {
    await Deno.stat(`${cache}/dl/release/v${VERSION}`);
    return undefined;
  } catch { /* not cached */ }
  try {
    const r = await fetch(
      `https://dl.deno.land/release/v${VERSION}/denort-x86_64-unknown-linux-gnu.zip`,
      {
        method: "HEAD",
        signal: AbortSignal.timeout(3000),
      },
    );
    await r.body?.cancel();
    return r.ok ? undefined : `dl.deno.land answered ${r.status}`;
  } catch (e) {
    return `denort cannot be downloaded (${
      (e as Error).message.split("\n")[0]
    }) and DENORT_BIN is not set`;
  }
}

const why = await compileUnavailable();
if (why) {
  console.warn(`ignoring "compile: both binaries build and run": ${why}`);
}

Deno.test({
  name: "compile: both binaries build and run",
  ignore: why !== undefined,
  async fn() {
    await using tmp = await tempDir();
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${REPO}/scripts/compile.ts`, "--out", tmp.path],
      cwd: REPO,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const cli = await new Deno.Command(`${tmp.path}/layerfs`, {
      args: ["--root", `${tmp.path}/s`, "--backend", "vfs", "--json", "init"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(cli.code, 0, new TextDecoder().decode(cli.stderr));
    assert.equal(
      JSON.parse(new TextDecoder().decode(cli.stdout)).backend,
      "vfs",
    );
    // The helper answers with one JSON line; bad input is refused before anything else.
    const helper = await new Deno.Command(`${tmp.path}/layerfs-helper`, {
      args: ["mount", "/nonexistent", ".."],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(helper.code, 1);
    assert.equal(JSON.parse(new TextDecoder().decode(helper.stdout)).ok, false);
  },
});

Deno.test("compile: a failing compile is explained in one line and exits 1", async () => {
  await using tmp = await tempDir();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${REPO}/scripts/compile.ts`, "--out", tmp.path],
    cwd: REPO,
    env: { DENORT_BIN: `${tmp.path}/no-such-denort` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 1);
  const err = new TextDecoder().decode(out.stderr).trim();
  assert.equal(err.split("\n").length, 1, err);
  assert.match(err, /DENORT_BIN=.* does not exist/);
  const { explainFailure } = await import("../../scripts/compile.ts");
  assert.match(
    explainFailure(
      "error sending request for url (https://dl.deno.land/release/v2.9.6/denort.zip): dns error",
    ),
    /^deno compile cannot get denort .* set DENORT_BIN/,
  );
});
