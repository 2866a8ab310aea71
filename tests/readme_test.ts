/**
 * The README's module example must run as written (with its import pointed
 * at this checkout's mod.ts).
 */
import assert from "node:assert/strict";
import { privilegedTest, tempDir } from "./_privileged.ts";

const README = new URL("../README.md", import.meta.url);
const MOD = new URL("../mod.ts", import.meta.url).href;

privilegedTest(
  "README: the module example runs and prints its changes",
  async () => {
    const text = await Deno.readTextFile(README);
    const block = text.match(/## Use it as a module\n+```ts\n([\s\S]*?)\n```/);
    assert.ok(block, "README has a module example");
    await using tmp = await tempDir();
    const file = `${tmp.path}/example.ts`;
    await Deno.writeTextFile(
      file,
      block[1].replace(`"./mod.ts"`, JSON.stringify(MOD)),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--no-config", file],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.match(
      new TextDecoder().decode(out.stdout),
      /path: "\/new\.txt", kind: "add"/,
    );
  },
);
