import { deepEqual, equal } from "node:assert/strict";
import {
  AT_FDCWD,
  close,
  copyFileRange,
  O,
  openat,
  read,
} from "../../src/sys/fd_linux.ts";
import { tempDir } from "../_privileged.ts";

const bytes = (n: number, seed: number) =>
  Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/** Opens `path` (read or write), runs `f`, closes. */
function withFds<T>(
  input: string,
  output: string,
  f: (i: number, o: number) => T,
): T {
  const i = openat(AT_FDCWD, input, O.RDONLY | O.CLOEXEC);
  const o = openat(
    AT_FDCWD,
    output,
    O.WRONLY | O.CREAT | O.TRUNC | O.CLOEXEC,
    0o644,
  );
  try {
    return f(i, o);
  } finally {
    close(i);
    close(o);
  }
}

Deno.test("copyFileRange: copies the asked bytes from the input's offset, and stops where the input ends", async () => {
  await using d = await tempDir();
  const data = bytes(300_000, 7);
  await Deno.writeFile(`${d.path}/in`, data);
  const [a, b] = withFds(`${d.path}/in`, `${d.path}/out`, (i, o) => {
    const skip = new Uint8Array(1000);
    equal(read(i, skip), 1000); // the copy starts at the input's offset
    const a = copyFileRange(i, o, 200_000);
    const b = copyFileRange(i, o, 500_000); // only 99,000 are left
    return [a, b];
  });
  deepEqual([a, b], [200_000, 99_000]);
  deepEqual(await Deno.readFile(`${d.path}/out`), data.subarray(1000));
});

Deno.test("copyFileRange: between file systems it copies or refuses, and a refusal moves no offset", async () => {
  // /dev/shm (tmpfs) to the temp dir: another file system on most machines,
  // where kernels since 5.19 refuse (EXDEV); older ones copy. Either way the
  // caller can finish with read/write from the offsets it finds.
  await using d = await tempDir();
  const shm = await Deno.makeTempDir({ dir: "/dev/shm" }).catch(() => null);
  if (shm === null) return; // no /dev/shm: nothing to compare
  try {
    const data = bytes(200_000, 3);
    await Deno.writeFile(`${shm}/in`, data);
    const got = withFds(`${shm}/in`, `${d.path}/out`, (i, o) => {
      const n = copyFileRange(i, o, data.length);
      // Finish through a buffer from where the copy stopped, as callers do.
      const buf = new Uint8Array(data.length);
      const m = read(i, buf);
      return { n, m, rest: buf.subarray(0, m) };
    });
    equal(got.n + got.m, data.length);
    const out = await Deno.readFile(`${d.path}/out`);
    deepEqual(out, data.subarray(0, got.n));
    deepEqual(got.rest, data.subarray(got.n));
  } finally {
    await Deno.remove(shm, { recursive: true });
  }
});
