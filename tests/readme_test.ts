/**
 * The README's module example must run as written (with its import pointed
 * at this checkout's mod.ts).
 */
import assert from "node:assert/strict";
import { privilegedTest, tempDir } from "./_privileged.ts";

const README = new URL("../README.md", import.meta.url);
const MOD = new URL("../mod.ts", import.meta.url).href;

/** Runs the README's ```ts block under `heading` and returns its stdout. */
async function runExample(heading: string): Promise<string> {
  const text = await Deno.readTextFile(README);
  const block = text.match(
    new RegExp(`## ${heading}\\n[\\s\\S]*?\`\`\`ts\\n([\\s\\S]*?)\\n\`\`\``),
  );
  assert.ok(block, `README has an example under "## ${heading}"`);
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
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

privilegedTest(
  "README: the module example runs and prints its changes",
  async () => {
    assert.match(
      await runExample("Use it as a module"),
      /path: "\/new\.txt", kind: "add"/,
    );
  },
);

Deno.test("README: the tar example packs, lists and extracts", async () => {
  assert.equal(
    await runExample("Tar without a store"),
    "dir etc/\nfile etc/motd\n3 bytes of files\n",
  );
});
