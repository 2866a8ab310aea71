import assert from "node:assert/strict";
import { type CliIo, runCli } from "../../src/cli/main.ts";

/** A CLI io whose stderr is a terminal (so progress is drawn) and whose stdin holds `stdin`. */
function terminalIo(stdin: Uint8Array): CliIo & { err: string[] } {
  const err: string[] = [];
  return {
    err,
    env: () => undefined,
    uid: Deno.uid() ?? 0,
    cwd: "/",
    stdin: () =>
      ReadableStream.from([stdin.subarray(0, 1000), stdin.subarray(1000)]),
    stdout: () => Deno.stdout,
    stderr: (s) => void err.push(s),
    isTerminal: { stdin: false, stdout: false, stderr: true },
  };
}

Deno.test("layerfs apply: reads a file and stdin to the end, counts every byte in its progress line", async () => {
  const root = await Deno.makeTempDir({ prefix: "layerfs-progress-" });
  try {
    // A 3 MiB tar: more than one 1 MiB read.
    const src = `${root}/src`;
    await Deno.mkdir(src);
    const big = new Uint8Array(3 << 20).map((_, i) => i & 0xff);
    await Deno.writeFile(`${src}/big`, big);
    await Deno.writeTextFile(`${src}/small`, "hi\n");
    const tarPath = `${root}/layer.tar`;
    assert.equal(
      await runCli(
        ["--root", `${root}/s`, "--backend", "vfs", "init"],
        terminalIo(new Uint8Array()),
        () => {},
      ),
      0,
    );
    const { packDir, writeToFile } = await import("../../mod.ts");
    {
      using out = await Deno.open(tarPath, { create: true, write: true });
      await writeToFile(packDir(src), out);
    }
    const tar = await Deno.readFile(tarPath);
    const total = `${(tar.length / 2 ** 20).toFixed(1)} MiB`;

    for (const [id, from] of [["fromfile", tarPath], ["fromstdin", "-"]]) {
      const io = terminalIo(tar);
      const out: string[] = [];
      assert.equal(
        await runCli(
          ["--root", `${root}/s`, "--backend", "vfs", "apply", id, from],
          io,
          (s) => void out.push(s),
        ),
        0,
        io.err.join(""),
      );
      assert.equal(out.join("").trim(), String(big.length + 3));
      // The final progress line counts the whole input.
      const last = io.err.join("").split("\r").at(-1)!;
      assert.match(
        last,
        new RegExp(`apply ${id}: ${total.replace(".", "\\.")}, `),
        last,
      );
      assert.deepEqual(await Deno.readFile(`${root}/s/diff/${id}/big`), big);
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
