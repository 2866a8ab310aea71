import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { packDir, StoreError, writeToFile } from "../../../mod.ts";
import {
  FilePrefetch,
  SLOT_BODY,
} from "../../../src/archive/export/_file_prefetch.ts";
import { walkTree } from "../../../src/archive/export/_walk.ts";
import { pumpToFd } from "../../../src/archive/export/_tar_stream.ts";
import { tarStream } from "../../../src/archive/export/_tar_pump.ts";
import { whiteoutCodec } from "../../../src/archive/whiteout/mod.ts";
import { openDirAt } from "../../../src/sys/fs_walk_linux.ts";
import { close, writableFdOf } from "../../../src/sys/fd_linux.ts";
import { tempDir } from "../../_privileged.ts";
import { fdsUnder } from "../../_fds.ts";
import { workersGone, workerThreads } from "../../_threads.ts";
import { collect, sh } from "../changes/_fixture.ts";

const enc = new TextEncoder();
const stdout = (o: Deno.CommandOutput) => new TextDecoder().decode(o.stdout);
const cname = (s: string) => enc.encode(`${s}\0`);
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function untilReady(p: FilePrefetch): Promise<void> {
  for (let i = 0; i < 500 && !p.ready; i++) await delay(10);
  ok(p.ready, "the helper did not start within 5 s");
}

/**
 * Bytes of `n` (deterministic), sized around the limits the read-ahead
 * has: empty, small, its slot size, the pump's copy_file_range size.
 */
function body(i: number): Uint8Array {
  const sizes = [
    0,
    1,
    511,
    512,
    4097,
    SLOT_BODY - 1,
    SLOT_BODY,
    SLOT_BODY + 1,
    65536,
    200_000,
  ];
  const n = i % 17 === 0 ? sizes[(i / 17) % sizes.length] : (i * 97) % 3000;
  const b = new Uint8Array(n);
  for (let k = 0; k < n; k++) b[k] = (k * 31 + i) & 0xff;
  return b;
}

/**
 * A tree of ~10,400 entries: files with subdirectories sorted between them
 * (each directory's runs of files end at a subdirectory), hardlinks across
 * directories, xattrs, symlinks, a fifo; those in d7, past the 8192 entries
 * that a pack emits before it starts its helper.
 */
async function buildTree(src: string): Promise<void> {
  for (let d = 0; d < 8; d++) {
    for (let i = 0; i < 1300; i++) {
      const dir = `${src}/d${d}`;
      if (i % 40 === 20) await Deno.mkdir(`${dir}/f${i}x`, { recursive: true });
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeFile(`${dir}/f${String(i).padStart(4, "0")}`, body(i));
    }
  }
  await sh(
    `ln d1/f0001 d7/hard && ln d7/f0300 d7/zhard
     setfattr -n user.k -v v1 d7/f0100 && setfattr -n user.k -v 0x00ff d7/f1204
     ln -s f0001 d7/link && mkfifo d7/fifo && : > d7/empty`,
    src,
  );
}

/**
 * Packs `src` into the file `out` with `pack` and checks that the bytes are
 * the streamed pack's (which reads every file on the calling thread), and
 * that no fd below `src` and no worker thread but `threads` is left.
 */
async function sameAsStreamed(
  src: string,
  out: string,
  pack: (f: Deno.FsFile) => Promise<number> | number,
  threads = workerThreads(),
): Promise<void> {
  const want = await collect(packDir(src));
  {
    using f = await Deno.create(out);
    equal(await pack(f), want.length);
  }
  deepEqual(await Deno.readFile(out), want);
  deepEqual(fdsUnder(src), []);
  deepEqual(await workersGone(threads), []);
}

Deno.test("pack read-ahead: a pack to a file is the same bytes as the streamed pack, with files, links, xattrs and subdirectories between runs of files", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await buildTree(src);
  await sameAsStreamed(
    src,
    `${d.path}/o.tar`,
    (f) => writeToFile(packDir(src), f),
  );
});

Deno.test("pack read-ahead: with its helper running from the first entry, the helper does files and the bytes are the same", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await buildTree(src);
  const threads = workerThreads();
  const p = FilePrefetch.start();
  await untilReady(p);
  const walk = walkTree(src, { codec: whiteoutCodec("none") });
  walk.readAhead(p);
  await sameAsStreamed(
    src,
    `${d.path}/o.tar`,
    async (f) => (await pumpToFd(tarStream(() => walk), writableFdOf(f)!))!,
    threads,
  );
  ok(p.helped > 0, "the helper answered no file");
});

Deno.test("pack read-ahead: a pack that fails part way closes every fd it and its helper opened and ends the helper", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await buildTree(src);
  // Late in the walk: a symlink whose target is not UTF-8 (refused).
  await sh(
    `python3 -c "import os; os.makedirs('zz'); os.symlink(b'\\xff', b'zz/bad')"`,
    src,
  );
  const threads = workerThreads();
  {
    using f = await Deno.create(`${d.path}/o.tar`);
    await rejects(writeToFile(packDir(src), f), StoreError);
  }
  deepEqual(fdsUnder(src), []);
  deepEqual(await workersGone(threads), []);
});

Deno.test("FilePrefetch: the helper opens, stats and reads files below the caller's directory fd; hands back an fd for xattrs and big bodies, and leaves all else to the caller", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await Deno.mkdir(`${src}/dir`, { recursive: true });
  await Deno.writeTextFile(`${src}/small`, "hello");
  await Deno.writeFile(`${src}/big`, new Uint8Array(SLOT_BODY + 1).fill(7));
  await Deno.writeFile(`${src}/empty`, new Uint8Array(0));
  await sh(
    `printf x > xattr && setfattr -n user.k -v v xattr && ln -s small link && mkfifo fifo`,
    src,
  );
  const threads = workerThreads();
  const dirFd = openDirAt(-100, src);
  const p = FilePrefetch.start();
  try {
    await untilReady(p);
    const names = [
      "small",
      "big",
      "empty",
      "xattr",
      "link",
      "fifo",
      "dir",
      "gone",
    ];
    const slots = names.map((n) => p.request(dirFd, cname(n)));
    ok(slots.every((s) => s >= 0));
    p.flush();
    for (let i = 0; i < 500 && !slots.every((s) => p.answered(s)); i++) {
      await delay(10);
    }
    ok(slots.every((s) => p.answered(s)), "the helper answered every request");
    const [small, big, empty, xattr, ...others] = slots.map((s) => p.take(s));
    equal(p.helped, 8); // every job was the helper's (four left to the caller)
    deepEqual(
      [small!.fd, small!.hasXattrs, new TextDecoder().decode(small!.body!)],
      [-1, false, "hello"],
    );
    equal(small!.stat.size, 5);
    equal(small!.stat.kind, "file");
    ok(big!.fd >= 0 && big!.body === null && !big!.hasXattrs);
    equal(big!.stat.size, SLOT_BODY + 1);
    close(big!.fd);
    deepEqual([empty!.fd, empty!.stat.size, empty!.body!.length], [-1, 0, 0]);
    ok(xattr!.fd >= 0 && xattr!.hasXattrs);
    close(xattr!.fd);
    // Not regular files, or missing: the caller does them itself.
    deepEqual(others, [null, null, null, null]);
    for (const s of slots.slice(0, 4)) p.release(s);
    equal(p.free, 64);
  } finally {
    p.close();
    close(dirFd);
  }
  deepEqual(fdsUnder(src), []);
  deepEqual(await workersGone(threads), []);
});

Deno.test("FilePrefetch: what the helper has not reached is the caller's; close stops it and closes the fds of answers never taken", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await Deno.mkdir(src);
  await Deno.writeFile(`${src}/big`, new Uint8Array(SLOT_BODY + 1));
  const threads = workerThreads();
  const dirFd = openDirAt(-100, src);
  try {
    // Closed before the helper started: nothing was done, nothing hangs.
    const early = FilePrefetch.start();
    equal(early.request(dirFd, cname("big")) >= 0, true);
    early.close();
    // Asked but not flushed: the helper does not see it; take does it here.
    const p = FilePrefetch.start();
    await untilReady(p);
    const mine = p.request(dirFd, cname("big"));
    const here = p.take(mine)!;
    ok(here.fd >= 0 && here.stat.size === SLOT_BODY + 1);
    close(here.fd);
    p.release(mine);
    deepEqual([p.free, p.helped], [64, 0]);
    // Answered with an open fd, never taken: close closes it.
    const left = p.request(dirFd, cname("big"));
    p.flush();
    for (let i = 0; i < 500 && !p.answered(left); i++) await delay(10);
    ok(p.answered(left));
    equal(fdsUnder(src).length, 2); // the directory and the answer's fd
    p.close();
    p.close(); // idempotent
  } finally {
    close(dirFd);
  }
  deepEqual(fdsUnder(src), []);
  deepEqual(await workersGone(threads), []);
});

Deno.test("pack read-ahead: a process without read access gets PermissionRequired from packDir, and with src/preload.ts packs on its own thread, the same bytes, and prints nothing", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await buildTree(src);
  const url = (p: string) =>
    JSON.stringify(new URL(`../../../${p}`, import.meta.url).href);
  const pack = (preload: boolean) =>
    `${
      preload ? `import ${url("src/preload.ts")};\n` : ""
    }import { packDir, writeToFile } from ${url("mod.ts")};
import { FilePrefetch } from ${url("src/archive/export/_file_prefetch.ts")};
using o = await Deno.open(Deno.args[1], { create: true, write: true });
try {
  await writeToFile(packDir(Deno.args[0]), o);
} catch (e) {
  console.log((e as Error).name);
  Deno.exit(3);
}
// A helper kept a while, as in a long pack: one that failed to load would
// say so on stderr by now.
const p = FilePrefetch.start();
await new Promise((r) => setTimeout(r, 500));
console.log(p.ready);
p.close();
`;
  // FFI and writes to its output only: a Worker could not load its module,
  // nor packDir the walk it loads on first read (unless preloaded).
  const run = async (preload: boolean) => {
    const script = `${d.path}/pack-${preload}.ts`;
    await Deno.writeTextFile(script, pack(preload));
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-ffi",
        `--allow-write=${d.path}`,
        "--no-prompt",
        script,
        src,
        `${d.path}/o-${preload}.tar`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(out.stderr);
    return [out.code, err.replace(/^(Download|Check) .*\n/gm, ""), stdout(out)];
  };
  deepEqual(await run(false), [3, "", "PermissionRequired\n"]);
  deepEqual(await run(true), [0, "", "false\n"]);
  deepEqual(
    await Deno.readFile(`${d.path}/o-true.tar`),
    await collect(packDir(src)),
  );
});
