import { deepEqual, rejects } from "node:assert/strict";
import { packDir, writeToFile } from "../../mod.ts";
import { tempDir } from "../_privileged.ts";
import { collect, sh } from "./changes/_fixture.ts";

Deno.test("writeToFile: a packDir stream lands byte for byte, with progress", async () => {
  await using d = await tempDir();
  await sh(
    `mkdir -p src/a && head -c 300000 /dev/urandom > src/a/big && printf hi > src/b`,
    d.path,
  );
  const want = await collect(packDir(`${d.path}/src`));
  let seen = 0;
  let n: number;
  {
    using f = await Deno.create(`${d.path}/o.tar`);
    n = await writeToFile(packDir(`${d.path}/src`), f, (k) => seen += k);
  }
  deepEqual(await Deno.readFile(`${d.path}/o.tar`), want);
  deepEqual([n, seen], [want.length, want.length]);
});

Deno.test("writeToFile: a plain (non-byte) stream is written too", async () => {
  await using d = await tempDir();
  const parts = [new Uint8Array([1, 2, 3]), new Uint8Array(70000).fill(7)];
  using f = await Deno.create(`${d.path}/o`);
  deepEqual(await writeToFile(ReadableStream.from(parts), f), 70003);
  const got = await Deno.readFile(`${d.path}/o`);
  deepEqual([got.length, got[0], got[2], got[3], got[70002]], [
    70003,
    1,
    3,
    7,
    7,
  ]);
});

Deno.test("writeToFile: a write error cancels the stream and is rethrown", async () => {
  await using d = await tempDir();
  await sh(`mkdir -p src && head -c 300000 /dev/urandom > src/big`, d.path);
  const fds = () => [...Deno.readDirSync("/proc/self/fd")].length;
  // A file opened read-only: the first write fails with EBADF.
  await Deno.writeFile(`${d.path}/ro`, new Uint8Array());
  using ro = await Deno.open(`${d.path}/ro`, { read: true });
  const before = fds();
  await rejects(writeToFile(packDir(`${d.path}/src`), ro));
  deepEqual(fds(), before, "packDir's fds are closed by the cancel");
});
