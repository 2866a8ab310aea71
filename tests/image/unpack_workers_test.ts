/**
 * Unpack workers: the same unpack (decompress, blob digest and size,
 * DiffID, extraction with a tar-split record) in a worker as on the main
 * thread, errors crossing back as the same classes and messages, the
 * source's own error object coming back as itself, and errors rebuilt by
 * class and fields.
 */

import assert from "node:assert/strict";
import {
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
import { ErrorBook } from "../../src/image/_wire.ts";
import { buildLayer, layerTar, sha } from "./_images.ts";

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
