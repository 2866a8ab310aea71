import { deepEqual, equal, ok, throws } from "node:assert/strict";
import {
  type ExportItem,
  TarPump,
  tarStream,
} from "../../../src/archive/export/_tar_pump.ts";
import { tarHeader } from "../../../src/archive/tar/header.ts";
import { readTar } from "../../../src/archive/tar/reader.ts";
import { StoreError } from "../../../src/errors.ts";
import { AT_FDCWD, close, O, openat } from "../../../src/sys/fd_linux.ts";
import { fdsUnder } from "../../_fds.ts";

/**
 * One file entry whose header says `size` bytes, over a file of `actual`
 * bytes: what a walk hands the pump when the file changed size between its
 * statx and its read.
 */
function oneFile(dir: string, size: number, actual: number) {
  const path = `${dir}/f`;
  Deno.writeFileSync(path, new Uint8Array(actual).fill(0x61));
  let given = false;
  return () => ({
    next(): ExportItem | null {
      if (given) return null;
      given = true;
      const fd = openat(AT_FDCWD, path, O.RDONLY | O.CLOEXEC);
      return { header: tarHeader({ name: "var/log/f", size }), fd };
    },
    close() {},
  });
}

/** Packs through the pump into a file (pumpTo: copy_file_range for big bodies). */
function pumpToFile(dir: string, items: ReturnType<typeof oneFile>): number {
  const out = openat(
    AT_FDCWD,
    `${dir}/out.tar`,
    O.WRONLY | O.CREAT | O.TRUNC | O.CLOEXEC,
    0o600,
  );
  try {
    const pump = new TarPump(items);
    try {
      return pump.pumpTo(out);
    } finally {
      pump.cleanup(); // what cancelling its stream does (writeToFile)
    }
  } finally {
    close(out);
  }
}

// Sizes around the pump's paths: a body read in one piece with room for the
// probe byte, one that ends exactly at a 1 MiB buffer's end, and bodies big
// enough for copy_file_range (64 KiB and up) on the file path.
const SIZES = [10, 4096, (1 << 20) - 512, 200_000, 3 << 20];

Deno.test("tar pump: a file that shrank or grew since its header was made fails the export, naming it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const size of SIZES) {
      for (const [actual, how] of [[size - 7, "shrank"], [size + 3, "grew"]]) {
        const re = new RegExp(
          `"var/log/f" ${how} while it was being exported \\(its header says ${size} bytes\\)`,
        );
        // Streamed (read(2) into the consumer's buffers) and into a file.
        const streamed = tarStream(oneFile(dir, size, actual as number));
        let err: unknown;
        try {
          for await (const _ of streamed) { /* read to the end */ }
        } catch (e) {
          err = e;
        }
        ok(err instanceof StoreError, `streamed, ${size} ${how}: ${err}`);
        ok(re.test(err.message), err.message);
        throws(
          () => pumpToFile(dir, oneFile(dir, size, actual as number)),
          (e: unknown) => e instanceof StoreError && re.test(e.message),
          `to a file, ${size} ${how}`,
        );
        deepEqual(fdsUnder(dir), [], "the body's fd is closed");
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tar pump: a file of its header's size packs whole, on both paths", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const size of SIZES) {
      const streamed = await new Response(tarStream(oneFile(dir, size, size)))
        .bytes();
      const written = pumpToFile(dir, oneFile(dir, size, size));
      const file = await Deno.readFile(`${dir}/out.tar`);
      equal(written, file.length);
      deepEqual(file, streamed, `${size}: the same bytes on both paths`);
      const got: [string, number][] = [];
      for await (const e of readTar(file)) {
        const body = await e.bytes();
        ok(body.every((b) => b === 0x61));
        got.push([e.header.name, body.length]);
      }
      deepEqual(got, [["var/log/f", size]]);
      deepEqual(fdsUnder(dir), []);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
