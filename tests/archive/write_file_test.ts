import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { packDir, writeToFile } from "../../mod.ts";
import {
  WRITE_BUFFER_SIZE,
  WRITE_BUFFERS,
} from "../../src/archive/write_file.ts";
import { tempDir } from "../_privileged.ts";
import { fdsUnder } from "../_fds.ts";
import { concat, sameBytes } from "../_bytes.ts";
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
  // A file opened read-only: the first write fails with EBADF.
  await Deno.writeFile(`${d.path}/ro`, new Uint8Array());
  using ro = await Deno.open(`${d.path}/ro`, { read: true });
  await rejects(writeToFile(packDir(`${d.path}/src`), ro));
  deepEqual(
    fdsUnder(`${d.path}/src`),
    [],
    "packDir's fds are closed by the cancel",
  );
});

/** A writer that takes at most `max` bytes a call, after a varying delay: writes must still land in order. */
function slowWriter(max: number) {
  const parts: Uint8Array[] = [];
  let calls = 0;
  let busy = false;
  const writer = {
    async write(p: Uint8Array): Promise<number> {
      if (busy) throw new Error("a write was issued while another ran");
      busy = true;
      await new Promise((r) => setTimeout(r, calls++ % 3));
      const n = Math.min(max, p.length);
      parts.push(p.slice(0, n)); // copy: the caller reuses its buffers
      busy = false;
      return n;
    },
  };
  const bytes = () => concat(parts);
  return { writer, bytes };
}

Deno.test("writeToFile: partial, slow writes land in order, one at a time, from reused buffers", async () => {
  await using d = await tempDir();
  // Over WRITE_BUFFERS * WRITE_BUFFER_SIZE, so every buffer is refilled.
  await sh(
    `mkdir -p src/a && head -c 9000000 /dev/urandom > src/a/big && for i in $(seq 1 50); do head -c $((i * 333)) /dev/urandom > src/f$i; done`,
    d.path,
  );
  ok(9000000 > WRITE_BUFFERS * WRITE_BUFFER_SIZE);
  const want = await collect(packDir(`${d.path}/src`));
  const slow = slowWriter(300000);
  const n = await writeToFile(packDir(`${d.path}/src`), slow.writer);
  deepEqual(n, want.length);
  const got = slow.bytes();
  ok(sameBytes(got, want));
  // The same through the default-reader path (a stream that is not a byte stream).
  const plain = slowWriter(70000);
  const chunks = [
    want.subarray(0, 5),
    want.subarray(5, 2_000_000),
    want.subarray(2_000_000),
  ];
  deepEqual(
    await writeToFile(ReadableStream.from(chunks), plain.writer),
    want.length,
  );
  const got2 = plain.bytes();
  ok(sameBytes(got2, want));
});

Deno.test("writeToFile: a failing writer on the default-reader path cancels the stream", async () => {
  let cancelled: unknown = undefined;
  let pulls = 0;
  const s = new ReadableStream<Uint8Array>({
    pull(c) {
      c.enqueue(new Uint8Array(100).fill(pulls++));
    },
    cancel(reason) {
      cancelled = reason;
    },
  });
  const boom = new Error("disk full");
  let writes = 0;
  const writer = {
    write(): Promise<number> {
      return ++writes === 3 ? Promise.reject(boom) : Promise.resolve(100);
    },
  };
  await rejects(writeToFile(s, writer), (e) => e === boom);
  deepEqual(cancelled, boom);
  ok(
    pulls < 10,
    `the stream was not drained after the failure (${pulls} pulls)`,
  );
});

Deno.test("writeToFile: a failing stream rejects only after the write under way has finished", async () => {
  let pulls = 0;
  const s = new ReadableStream<Uint8Array>({
    pull(c) {
      if (pulls++ === 1) throw new Error("read failed");
      c.enqueue(new Uint8Array(10));
    },
  });
  let writing = false;
  const writer = {
    async write(p: Uint8Array): Promise<number> {
      writing = true;
      await new Promise((r) => setTimeout(r, 30));
      writing = false;
      return p.length;
    },
  };
  await rejects(writeToFile(s, writer), /read failed/);
  deepEqual(writing, false, "a write was still running on the caller's file");
});

Deno.test("writeToFile: a pack whose output is on another file system (copy_file_range refused) has the same bytes", async () => {
  // Big bodies go file to file by copy_file_range; from tmpfs into the temp
  // dir the kernel may refuse (EXDEV), and the pack must fall back to reads
  // without losing or repeating a byte. Two big files and small ones between.
  await using d = await tempDir();
  const shm = await Deno.makeTempDir({ dir: "/dev/shm" }).catch(() => null);
  if (shm === null) return; // no /dev/shm: the same-fs case is covered above
  try {
    await sh(
      `mkdir -p src/a && head -c 700000 /dev/urandom > src/a/big1 && printf x > src/a/small && head -c 90000 /dev/urandom > src/b && head -c 1300000 /dev/urandom > src/c`,
      shm,
    );
    const want = await collect(packDir(`${shm}/src`));
    for (const out of [`${d.path}/o.tar`, `${shm}/o.tar`]) {
      {
        using f = await Deno.create(out);
        equal(await writeToFile(packDir(`${shm}/src`), f), want.length);
      }
      ok(sameBytes(await Deno.readFile(out), want), out);
    }
  } finally {
    await Deno.remove(shm, { recursive: true });
  }
});
