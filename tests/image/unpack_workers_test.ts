/**
 * Unpack workers: the same unpack (decompress, blob digest and size,
 * DiffID, extraction with a tar-split record) in a worker as on the main
 * thread, errors crossing back as the same classes and messages, the
 * source's own error object coming back as itself, and errors rebuilt by
 * class and fields.
 */

import assert from "node:assert/strict";
import {
  DigestMismatch,
  Interrupted,
  InvalidArchive,
  InvalidImage,
  LayerfsError,
  RegistryError,
} from "../../mod.ts";
import { SysError } from "../../src/sys/libc_linux.ts";
import {
  inlineUnpacker,
  ordered,
  type Unpacker,
  workerUnpacker,
} from "../../src/image/_unpack_pool.ts";
import type { UnpackJob } from "../../src/image/_unpack.ts";
import {
  ErrorBook,
  owned,
  receiveStream,
  sendStream,
} from "../../src/image/_wire.ts";
import { buildLayer, layerTar, sha } from "./_images.ts";
import { fdsUnder } from "../_fds.ts";
import { workersGone, workerThreads } from "../_threads.ts";

async function staging(root: string, name: string) {
  const dir = `${root}/${name}`;
  await Deno.mkdir(`${dir}/diff`, { recursive: true });
  return {
    dirs: {
      dir: `${dir}/diff`,
      parentDirs: [],
      format: "vfs" as const,
      userXattr: false,
    },
    record: `${dir}/tarsplit`,
  };
}

/** Runs one gzip layer through `u`; returns its size or the error. */
async function unpackWith(
  u: Unpacker,
  root: string,
  name: string,
  blob: Uint8Array,
  job: Omit<UnpackJob, "subject" | "label">,
  stream = () =>
    ReadableStream.from([blob.subarray(0, 100), blob.subarray(100)]),
): Promise<number | Error> {
  const staged = await staging(root, name);
  return await u.run(
    { subject: `img layer ${name}`, label: `blob-${name}`, ...job },
    () => ({ stream: stream(), size: blob.length }),
    staged,
    () => {},
  ).catch((e) => e);
}

Deno.test("unpack workers: layers unpack in workers as on the main thread, checked the same", async () => {
  const root = await Deno.makeTempDir();
  const pool = workerUnpacker(2);
  try {
    const tars = await Promise.all([0, 1, 2].map((i) =>
      layerTar([
        { name: `d${i}`, type: "dir" },
        ...Array.from({ length: 50 }, (_, f) => ({
          name: `d${i}/f${f}`,
          content: `${i}:${f}\n`.repeat(f),
        })),
      ])
    ));
    const layers = tars.map((t) => buildLayer(t, "gzip"));
    // Three at once in two workers.
    const sizes = await Promise.all(
      layers.map((l, i) =>
        unpackWith(pool, root, `w${i}`, l.blob, {
          digest: sha(l.blob),
          diffId: l.diffId,
          compression: "gzip",
        })
      ),
    );
    assert.deepEqual(sizes, tars.map((t) => t.length));
    for (let i = 0; i < 3; i++) {
      assert.equal(
        await Deno.readTextFile(`${root}/w${i}/diff/d${i}/f3`),
        `${i}:3\n`.repeat(3),
      );
      assert.ok((await Deno.stat(`${root}/w${i}/tarsplit`)).size > 0);
    }
    // A wrong DiffID and a wrong blob digest: the same class and message
    // from a worker as from the main thread.
    const l = layers[0];
    for (
      const job of [
        { diffId: `sha256:${"0".repeat(64)}`, digest: sha(l.blob) },
        { diffId: l.diffId, digest: "1".repeat(64) },
        { diffId: l.diffId, digest: sha(l.blob), compression: "zstd" as const },
      ]
    ) {
      const inWorker = await unpackWith(pool, root, "bad", l.blob, job);
      const inline = await unpackWith(
        inlineUnpacker(),
        root,
        "bad2",
        l.blob,
        job,
      );
      await Deno.remove(`${root}/bad`, { recursive: true });
      await Deno.remove(`${root}/bad2`, { recursive: true });
      assert.ok(inWorker instanceof InvalidImage, String(inWorker));
      assert.equal(
        (inWorker as Error).message.replaceAll("bad2", "bad"),
        (inline as Error).message.replaceAll("bad2", "bad"),
      );
      assert.equal((inWorker as InvalidImage).subject, "img layer bad");
      const cause = (inWorker as Error).cause;
      if (job.compression === "zstd") {
        assert.ok(cause instanceof InvalidArchive);
      }
    }
    // The source's own error (a registry's, an abort's reason) comes back
    // as the very object, whatever the worker made of it.
    const cut = new RegistryError(
      "example.com",
      "the connection was reset; try again",
    );
    const got = await unpackWith(pool, root, "cut", l.blob, {
      diffId: l.diffId,
      compression: "gzip",
    }, () =>
      new ReadableStream({
        start(c) {
          c.enqueue(l.blob.slice(0, 50));
          c.error(cut);
        },
      }));
    assert.equal(got, cut);
    // The pool still works after failures.
    assert.equal(
      await unpackWith(pool, root, "again", l.blob, {
        diffId: l.diffId,
        compression: "gzip",
      }),
      tars[0].length,
    );
  } finally {
    pool.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("unpack workers: errors are rebuilt by class, message, fields and cause", () => {
  const a = new ErrorBook();
  const b = new ErrorBook();
  const sys = new SysError("openat", 2, "/x");
  const e = new InvalidImage(
    "app:1 layer 2",
    "its tar cannot be applied",
    "fix it",
    {
      cause: new InvalidArchive("bad header", "etc/passwd", { cause: sys }),
    },
  );
  const back = b.decode(a.encode(e));
  assert.ok(back instanceof InvalidImage && back instanceof LayerfsError);
  assert.equal(back.message, e.message);
  assert.equal(back.name, "InvalidImage");
  assert.equal((back as InvalidImage).subject, "app:1 layer 2");
  assert.equal((back as InvalidImage).exitCode, 1);
  const c = back.cause as InvalidArchive;
  assert.ok(c instanceof InvalidArchive);
  assert.equal(c.entry, "etc/passwd");
  assert.ok(c.cause instanceof SysError);
  assert.equal((c.cause as SysError).code, sys.code);
  // Sent back, it is the sender's own object again.
  assert.equal(a.decode(b.encode(back)), e);
  const abort = b.decode(a.encode(new DOMException("stopped", "AbortError")));
  assert.ok(abort instanceof DOMException);
  assert.equal(abort.name, "AbortError");
});

Deno.test("unpack workers: jobs start in the order their places were taken, at most n at once", async () => {
  const slot = ordered(2);
  const slots = [0, 1, 2, 3, 4].map(() => slot());
  const started: number[] = [];
  let running = 0;
  let peak = 0;
  const gates = slots.map(() => Promise.withResolvers<void>());
  const job = (i: number) => async () => {
    started.push(i);
    peak = Math.max(peak, ++running);
    await gates[i].promise;
    running--;
    return i;
  };
  // run() reached in another order than the places: 3, 1, then 0.
  const r3 = slots[3].run(job(3));
  const r1 = slots[1].run(job(1));
  await Promise.resolve();
  assert.deepEqual(started, [], "place 0 holds the others back");
  const r0 = slots[0].run(job(0));
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(started, [0, 1]);
  slots[2].release(); // its layer needed no unpack
  gates[0].resolve();
  assert.equal(await r0, 0);
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(started, [0, 1, 3]);
  const r4 = slots[4].run(job(4));
  for (const g of gates) g.resolve();
  assert.deepEqual(await Promise.all([r1, r3, r4]), [1, 3, 4]);
  assert.deepEqual(started, [0, 1, 3, 4]);
  assert.equal(peak, 2);
  await assert.rejects(slots[0].run(job(0)), /one job/);
});

/** A layer of many files and a big incompressible one, so its blob takes many chunks. */
async function bigTar(): Promise<Uint8Array> {
  const body = new Uint8Array(1 << 20);
  let x = 2463534242; // xorshift32: bytes gzip cannot shrink
  for (let i = 0; i < body.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    body[i] = x & 0xff;
  }
  return await layerTar([
    { name: "d", type: "dir" },
    ...Array.from({ length: 300 }, (_, f) => ({
      name: `d/f${f}`,
      content: `${f}\n`.repeat(f * 7),
    })),
    { name: "d/big", content: new TextDecoder("latin1").decode(body) },
  ]);
}

Deno.test("unpack workers: a layer decoded on the calling thread and extracted in a worker gives the same files, record and errors", async () => {
  const root = await Deno.makeTempDir();
  const before = workerThreads();
  // Both jobs split (decodeHere 2), and one split beside one whole.
  const pools = [
    workerUnpacker(2, { decodeHere: 2 }),
    workerUnpacker(2, { decodeHere: 1 }),
  ];
  try {
    const tar = await bigTar();
    for (const c of ["gzip", "zstd", "none"] as const) {
      const l = buildLayer(tar, c);
      const job = { digest: sha(l.blob), diffId: l.diffId };
      const inline = await unpackWith(
        inlineUnpacker(),
        root,
        `i-${c}`,
        l.blob,
        job,
      );
      assert.equal(inline, tar.length);
      for (const [p, pool] of pools.entries()) {
        // Two at once; the compression named, and detected.
        const got = await Promise.all([
          unpackWith(pool, root, `s${p}-${c}-a`, l.blob, {
            ...job,
            compression: c,
          }),
          unpackWith(pool, root, `s${p}-${c}-b`, l.blob, job),
        ]);
        assert.deepEqual(got, [tar.length, tar.length]);
        for (const s of ["a", "b"]) {
          const dir = `${root}/s${p}-${c}-${s}`;
          // The record (which ends with the tar's sha256, sent with the
          // tar's end) is byte for byte the inline one.
          assert.deepEqual(
            await Deno.readFile(`${dir}/tarsplit`),
            await Deno.readFile(`${root}/i-${c}/tarsplit`),
          );
          assert.deepEqual(
            await Deno.readFile(`${dir}/diff/d/big`),
            await Deno.readFile(`${root}/i-${c}/diff/d/big`),
          );
          assert.equal(
            await Deno.readTextFile(`${dir}/diff/d/f9`),
            "9\n".repeat(63),
          );
          await Deno.remove(dir, { recursive: true });
        }
      }
      await Deno.remove(`${root}/i-${c}`, { recursive: true });
    }
    // Every failure: the same class and message as on the calling thread.
    const l = buildLayer(tar, "gzip");
    const corrupt = l.blob.slice();
    corrupt[corrupt.length >> 1] ^= 0xff;
    const badTar = tar.slice();
    badTar.set(new TextEncoder().encode("not a header"), 0);
    const bad = buildLayer(badTar, "gzip");
    const cases: [string, Uint8Array, Omit<UnpackJob, "subject" | "label">][] =
      [
        ["diffid", l.blob, {
          diffId: `sha256:${"0".repeat(64)}`,
          digest: sha(l.blob),
        }],
        ["digest", l.blob, { diffId: l.diffId, digest: "1".repeat(64) }],
        ["format", l.blob, { diffId: l.diffId, compression: "zstd" }],
        ["corrupt", corrupt, { diffId: l.diffId, compression: "gzip" }],
        ["short", l.blob.subarray(0, l.blob.length >> 1), {
          diffId: l.diffId,
          compression: "gzip",
        }],
        ["long", l.blob, { diffId: l.diffId, size: l.blob.length - 1 }],
        ["tar", bad.blob, { diffId: bad.diffId, compression: "gzip" }],
      ];
    for (const [name, blob, job] of cases) {
      const opened = (size?: number) => ({
        stream: ReadableStream.from([
          blob.subarray(0, 100),
          blob.subarray(100),
        ]),
        size,
      });
      const run = async (u: Unpacker, dir: string) => {
        const staged = await staging(root, dir);
        return await u.run(
          { subject: `img layer ${name}`, label: "blob", ...job },
          () => opened(job.size),
          staged,
          () => {},
        ).catch((e) => e);
      };
      const inline = await run(inlineUnpacker(), `${name}-i`);
      const split = await run(pools[0], `${name}-s`);
      assert.ok(inline instanceof InvalidImage, `${name}: ${inline}`);
      assert.ok(split instanceof InvalidImage, `${name}: ${split}`);
      assert.equal(split.message, inline.message, name);
      assert.equal(split.subject, inline.subject);
      assert.equal(split.cause?.constructor, inline.cause?.constructor, name);
      assert.equal(
        (split.cause as Error | undefined)?.message,
        (inline.cause as Error | undefined)?.message,
        name,
      );
      if (name === "tar" || name === "corrupt" || name === "format") {
        assert.ok(split.cause instanceof InvalidArchive, name);
      }
    }
    // The source's own error comes back as the very object.
    const cut = new RegistryError(
      "example.com",
      "the connection was reset; try again",
    );
    const got = await unpackWith(pools[0], root, "cut", l.blob, {
      diffId: l.diffId,
      compression: "gzip",
    }, () =>
      new ReadableStream({
        start(c) {
          c.enqueue(l.blob.slice(0, 50000));
          c.error(cut);
        },
      }));
    assert.equal(got, cut);
  } finally {
    for (const p of pools) p.close();
    await Deno.remove(root, { recursive: true });
  }
  assert.deepEqual(await workersGone(before), []);
});

Deno.test("unpack workers: after the tar fails, the blob's end decides, on every pool: a self-checking source's DigestMismatch with the tar's error as cause; a rest that cannot be read leaves the tar's error and the source's error untouched", async () => {
  const root = await Deno.makeTempDir();
  const before = workerThreads();
  const pools: [string, Unpacker][] = [
    ["inline", inlineUnpacker()],
    ["worker", workerUnpacker(1)],
    ["decodeHere", workerUnpacker(1, { decodeHere: 1 })],
  ];
  try {
    const l = buildLayer(await bigTar(), "gzip");
    const corrupt = l.blob.slice();
    corrupt[40] ^= 0xff; // in the first deflate block: the tar breaks early
    // The source checks itself, as a registry client's stream does: its
    // DigestMismatch comes at its end, after the tar has failed.
    // (Pulled: an error in start() would drop the chunks queued before it.)
    const chunks = (bytes: Uint8Array, end: Error) => {
      let at = 0;
      return new ReadableStream<Uint8Array>({
        pull(c) {
          if (at >= bytes.length) return c.error(end);
          c.enqueue(bytes.slice(at, at += 65536));
        },
      }, { highWaterMark: 0 });
    };
    const selfChecking = () =>
      chunks(
        corrupt,
        new DigestMismatch("blob", `sha256:${sha(l.blob)}`, "other"),
      );
    const down = new RegistryError("example.com", "the connection dropped", {
      cause: new Error("reset"),
    });
    // A rest that fails to download: the tar's error is the answer.
    const failing = () =>
      chunks(corrupt.subarray(0, corrupt.length - 65536), down);
    for (const [name, pool] of pools) {
      const job = { diffId: l.diffId, compression: "gzip" as const };
      const mismatch = await unpackWith(
        pool,
        root,
        `${name}-m`,
        corrupt,
        { ...job, selfVerifying: true },
        selfChecking,
      );
      assert.ok(mismatch instanceof DigestMismatch, `${name}: ${mismatch}`);
      assert.ok(mismatch.cause instanceof InvalidArchive, `${name}: cause`);
      const cut = await unpackWith(
        pool,
        root,
        `${name}-c`,
        corrupt,
        job,
        failing,
      );
      assert.ok(cut instanceof InvalidImage, `${name}: ${cut}`);
      assert.match(cut.message, /its layer tar cannot be applied/);
      assert.match(cut.message, /make or fetch the image again/);
      assert.ok(cut.cause instanceof InvalidArchive, `${name}: cut cause`);
      assert.equal((down.cause as Error).message, "reset"); // untouched
    }
  } finally {
    for (const [, p] of pools) p.close();
    await Deno.remove(root, { recursive: true });
  }
  assert.deepEqual(await workersGone(before), []);
});

Deno.test("unpack workers: an abort in the middle of a split layer releases the source, keeps no temp file and leaves no worker", async () => {
  const root = await Deno.makeTempDir();
  const before = workerThreads();
  const pool = workerUnpacker(1, { decodeHere: 1 });
  try {
    const tar = await bigTar();
    const l = buildLayer(tar, "gzip");
    await Deno.writeFile(`${root}/blob`, l.blob);
    const staged = await staging(root, "x");
    const ac = new AbortController();
    const reason = new DOMException("stopped by the test", "AbortError");
    let cancelled: unknown;
    let served = 0;
    const file = await Deno.open(`${root}/blob`);
    const reader = file.readable.getReader();
    // The file's bytes up to a third, then nothing until the abort.
    const source = new ReadableStream<Uint8Array>({
      async pull(c) {
        if (served > l.blob.length / 3) {
          ac.abort(reason);
          return await new Promise(() => {});
        }
        const r = await reader.read();
        if (r.done) return c.close();
        served += r.value.length;
        c.enqueue(r.value);
      },
      async cancel(why) {
        cancelled = why;
        await reader.cancel(why);
      },
    }, { highWaterMark: 0 });
    const got = await pool.run(
      {
        subject: "img layer 1",
        label: "blob",
        diffId: l.diffId,
        digest: sha(l.blob),
        keepTmp: `${root}/kept.tmp`,
      },
      () => ({
        stream: source.pipeThrough(new TransformStream(), {
          signal: ac.signal,
        }),
        size: l.blob.length,
      }),
      staged,
      () => {},
    ).catch((e) => e);
    assert.equal(got, reason);
    assert.equal(cancelled, reason);
    assert.ok(served < l.blob.length);
    // The kept blob's temp file is gone, the blob file is closed.
    assert.deepEqual(
      [...Deno.readDirSync(root)].map((e) => e.name).sort(),
      ["blob", "x"],
    );
    assert.deepEqual(fdsUnder(root), []);
  } finally {
    pool.close();
    await Deno.remove(root, { recursive: true });
  }
  assert.deepEqual(await workersGone(before), []);
});

Deno.test("unpack workers: owned() batches bytes into buffers it owns, and an error comes after the bytes before it", async () => {
  const shared = new Uint8Array(10).map((_, i) => i);
  const cut = new RangeError("cut");
  const got: Uint8Array[] = [];
  const parts = [
    shared.subarray(0, 3),
    shared.subarray(3, 3),
    shared.subarray(3, 10),
    shared.subarray(0, 5),
  ];
  const reader = owned(
    new ReadableStream<Uint8Array>({
      // Views of one buffer, an empty one among them, one per pull.
      pull(c) {
        const next = parts.shift();
        if (next) c.enqueue(next);
        else c.error(cut);
      },
    }, { highWaterMark: 0 }),
    4,
  ).getReader();
  let err: unknown;
  try {
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      got.push(r.value);
    }
  } catch (e) {
    err = e;
  }
  assert.equal(err, cut);
  assert.deepEqual(got.map((c) => [...c]), [
    [0, 1, 2, 3],
    [4, 5, 6, 7],
    [8, 9, 0, 1],
    [2, 3, 4],
  ]);
  for (const c of got) {
    assert.equal(c.byteOffset, 0);
    assert.equal(c.byteLength, c.buffer.byteLength);
    assert.notEqual(c.buffer, shared.buffer);
  }
  // A stream that ends: the last batch is shorter, then the end.
  const all = await new Response(
    owned(ReadableStream.from([shared.subarray(0, 6)]), 4),
  ).bytes();
  assert.deepEqual([...all], [0, 1, 2, 3, 4, 5]);
});

Deno.test("unpack workers: Deno's own errors, layerfs errors of the same name and DOMExceptions keep their classes", () => {
  const a = new ErrorBook();
  const b = new ErrorBook();
  const deno = b.decode(a.encode(new Deno.errors.Interrupted("EINTR")));
  assert.ok(deno instanceof Deno.errors.Interrupted);
  assert.ok(!(deno instanceof LayerfsError));
  const ours = b.decode(a.encode(new Interrupted("pull of app", "SIGINT")));
  assert.ok(ours instanceof Interrupted && ours instanceof LayerfsError);
  assert.equal((ours as Interrupted).signal, "SIGINT");
  const dom = b.decode(
    a.encode(new DOMException("no clone", "DataCloneError")),
  );
  assert.ok(dom instanceof DOMException);
  assert.equal(dom.name, "DataCloneError");
  assert.equal(dom.message, "no clone");
});

/** The job of gzip layer `l`, checked against its digest and DiffID. */
function gzipJob(l: { blob: Uint8Array; diffId: string }): UnpackJob {
  return {
    subject: "img layer 1",
    label: "blob",
    digest: sha(l.blob),
    diffId: l.diffId,
    compression: "gzip",
  };
}

/**
 * Runs `body` with a temp dir and `pool`; then closes the pool, removes the
 * dir and checks that no worker thread it started is left.
 */
async function withPool(
  pool: Unpacker,
  body: (root: string, before: string[]) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir();
  const before = workerThreads();
  try {
    await body(root, before);
  } finally {
    pool.close();
    await Deno.remove(root, { recursive: true });
  }
  assert.deepEqual(await workersGone(before), []);
}

Deno.test("unpack workers: a progress callback that throws fails its job, not the process; the worker stays usable", async () => {
  const pool = workerUnpacker(1);
  await withPool(pool, async (root, before) => {
    const tar = await layerTar(
      Array.from({ length: 20 }, (_, f) => ({
        name: `f${f}`,
        content: "x".repeat(4096 * f),
      })),
    );
    const l = buildLayer(tar, "gzip");
    const boom = new Error("progress display failed");
    const open = () => ({
      stream: ReadableStream.from([
        l.blob.subarray(0, 100),
        l.blob.subarray(100),
      ]),
      size: l.blob.length,
    });
    const got = await pool.run(
      gzipJob(l),
      open,
      await staging(root, "a"),
      () => {
        throw boom;
      },
    ).catch((e) => e);
    assert.equal(got, boom);
    // The same worker takes the next job and completes it.
    const size = await pool.run(
      gzipJob(l),
      open,
      await staging(root, "b"),
      () => {},
    );
    assert.equal(size, tar.length);
    // One worker did both.
    assert.equal(workerThreads().filter((t) => !before.includes(t)).length, 1);
  });
});

Deno.test("unpack workers: a worker that fails to load while its job waits for bytes fails that job, not the process", async () => {
  const dir = await Deno.makeTempDir();
  const bad = `${dir}/bad_worker.ts`;
  await Deno.writeTextFile(bad, 'throw new Error("no such worker");\n');
  // Split: the job decodes on this thread and posts to the worker only once
  // its first bytes came, well after the worker's module failed.
  const pool = workerUnpacker(1, {
    decodeHere: 1,
    workerUrl: new URL(`file://${bad}`).href,
  });
  try {
    await withPool(pool, async (root) => {
      const l = buildLayer(
        await layerTar([{ name: "f", content: "x" }]),
        "gzip",
      );
      const source = new ReadableStream<Uint8Array>({
        async pull(c) {
          await new Promise((r) => setTimeout(r, 500));
          c.enqueue(l.blob);
          c.close();
        },
      });
      const got = await pool.run(
        gzipJob(l),
        () => ({ stream: source, size: l.blob.length }),
        await staging(root, "a"),
        () => {},
      ).catch((e) => e);
      assert.ok(got instanceof Error, String(got));
      assert.match(got.message, /The unpack worker failed: .*no such worker/);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unpack workers: closing the pool fails a job still running and releases its source", async () => {
  const pool = workerUnpacker(1);
  await withPool(pool, async (root) => {
    const l = buildLayer(await layerTar([{ name: "f", content: "x" }]), "gzip");
    let cancelled = false;
    let sent = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(c) {
        // Half the blob, then nothing: the job cannot end by itself.
        if (sent > 0) return new Promise(() => {});
        sent = l.blob.length >> 1;
        c.enqueue(l.blob.subarray(0, sent));
      },
      cancel() {
        cancelled = true;
      },
    }, { highWaterMark: 0 });
    const job = pool.run(
      gzipJob(l),
      () => ({ stream: source, size: l.blob.length }),
      await staging(root, "a"),
      () => {},
    ).catch((e) => e);
    while (sent === 0) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 200)); // the worker has it
    pool.close();
    const got = await job;
    assert.ok(got instanceof Error, String(got));
    assert.match(got.message, /pool was closed/);
    assert.ok(cancelled);
  });
});

Deno.test("unpack workers: sendStream posts chunks in batches of at least `batch` bytes, transferred, and an error comes after the bytes before it", async () => {
  const cut = new RangeError("cut");
  const sent: Uint8Array[] = [];
  let next = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(c) {
      if (sent.length === 7) return c.error(cut);
      const chunk = new Uint8Array(10).map(() => next++);
      sent.push(chunk);
      c.enqueue(chunk);
    },
  }, { highWaterMark: 0 });
  const channel = new MessageChannel();
  const messages: number[] = [];
  const book = new ErrorBook();
  const sending = sendStream(source, channel.port1, book, undefined, 25);
  // Counted as they arrive (receiveStream takes them through onmessage).
  channel.port2.addEventListener("message", (ev) => {
    if (ev.data.chunks) messages.push(ev.data.chunks.length);
  });
  const got: number[] = [];
  let err: unknown;
  try {
    for await (const c of receiveStream(channel.port2, book)) got.push(...c);
  } catch (e) {
    err = e;
  }
  await sending.stop();
  assert.ok(err instanceof RangeError && err.message === "cut", String(err));
  assert.deepEqual(got, Array.from({ length: 70 }, (_, i) => i));
  // 3 chunks (30 bytes) per message, then the last one before the error.
  assert.deepEqual(messages, [3, 3, 1]);
  // Transferred, not copied: the sender's buffers are detached.
  assert.ok(sent.every((c) => c.byteLength === 0));
});

Deno.test("unpack workers: sendStream copies a chunk whose buffer is in its batch already (no DataCloneError)", async () => {
  const one = new Uint8Array([1, 2, 3]);
  const channel = new MessageChannel();
  const book = new ErrorBook();
  const sending = sendStream(
    ReadableStream.from([one, one]),
    channel.port1,
    book,
    undefined,
    100,
  );
  const got: number[] = [];
  for await (const c of receiveStream(channel.port2, book)) got.push(...c);
  await sending.stop();
  assert.deepEqual(got, [1, 2, 3, 1, 2, 3]);
});
