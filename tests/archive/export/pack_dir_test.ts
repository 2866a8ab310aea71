import { deepEqual, ok, rejects } from "node:assert/strict";
import { packDir } from "../../../src/archive/export/pack_dir.ts";
import { writeToFile } from "../../../src/archive/write_file.ts";
import { readTar } from "../../../src/archive/tar/reader.ts";
import { tempDir } from "../../_privileged.ts";
import { readByob } from "../../_byob.ts";
import { fdsUnder } from "../../_fds.ts";
import { LayerfsError, StoreError } from "../../../src/errors.ts";
import { collect, gnuList, gnuNames, save, sh } from "../changes/_fixture.ts";

const T = "1700000000.123456789";
const TS = "2023-11-14 22:13:20.123456789";

/** A small tree of every kind packDir handles, with fixed ns mtimes. */
async function buildTree(root: string): Promise<void> {
  await sh(
    `mkdir -p a/b 'ü' && printf 'hello\\n' > a/b/f && ln a/b/f a/h && ln -s ../x a/s
     mkfifo fifo && : > a.txt && printf x > 'ü/é'
     setfattr -n user.bin -v 0x00ff0110 a/b/f
     python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')"
     chmod 4755 a.txt
     touch -h -d @${T} a/s a/b/f a.txt fifo 'ü/é' a/b a 'ü'`,
    root,
  );
}

Deno.test("packDir: exact GNU tar listing (types, names, ns mtimes, xattrs, hardlinks, no sockets)", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await Deno.mkdir(src);
  await buildTree(src);
  const tar = await save(`${d.path}/o.tar`, await collect(packDir(src)));
  const o = `${Deno.uid()}/${Deno.gid()}`;
  deepEqual(await gnuList(tar), [
    `drwxr-xr-x ${o} 0 ${TS} a/`,
    `drwxr-xr-x ${o} 0 ${TS} a/b/`,
    `-rw-r--r--* ${o} 6 ${TS} a/b/f`,
    `x: 4 user.bin`,
    `hrw-r--r-- ${o} 0 ${TS} a/h link to a/b/f`,
    `lrwxrwxrwx ${o} 0 ${TS} a/s -> ../x`,
    `-rwsr-xr-x ${o} 0 ${TS} a.txt`,
    `prw-r--r-- ${o} 0 ${TS} fifo`,
    `drwxr-xr-x ${o} 0 ${TS} ü/`,
    `-rw-r--r-- ${o} 1 ${TS} ü/é`,
  ]);
});

Deno.test("packDir: GNU tar --compare finds no difference, against the source and after extraction", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await Deno.mkdir(src);
  await buildTree(src);
  // Some bulk: a large file (many stream chunks), long names, many small files.
  await sh(
    `head -c 3500000 /dev/urandom > big
     mkdir -p ${"d".repeat(90)}/${"e".repeat(90)}/${"f".repeat(120)}
     printf long > ${"d".repeat(90)}/${"e".repeat(90)}/${"f".repeat(120)}/${
      "g".repeat(200)
    }
     mkdir many && for i in $(seq 1 300); do head -c $((i * 37)) /dev/urandom > many/$i; done`,
    src,
  );
  const tar = await save(`${d.path}/o.tar`, await collect(packDir(src)));
  const flags = "--xattrs --xattrs-include='*' --numeric-owner";
  await sh(`tar ${flags} -df '${tar}' -C '${src}'`);
  await Deno.mkdir(`${d.path}/x`);
  await sh(
    `tar ${flags} -xpf '${tar}' -C '${d.path}/x' && tar ${flags} -df '${tar}' -C '${d.path}/x'`,
  );
  // And the content really is there (compare checks only what the tar lists).
  await sh(
    `diff -r --no-dereference '${src}/many' '${d.path}/x/many' && cmp '${src}/big' '${d.path}/x/big'`,
  );
});

Deno.test("packDir: the same tree gives the same bytes", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await Deno.mkdir(src);
  await buildTree(src);
  await sh(`head -c 2500000 /dev/urandom > big; mkdir z y; touch z/1 y/2`, src);
  const a = await collect(packDir(src));
  const b = await collect(packDir(src));
  deepEqual(a.length, b.length);
  ok(a.every((x, i) => x === b[i]), "two packs of one tree differ");
  deepEqual(a.length % 512, 0);
});

Deno.test("packDir: a BYOB reader with one reused buffer of any size gets the same bytes", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await Deno.mkdir(src);
  await buildTree(src);
  await sh(
    `head -c 150000 /dev/urandom > big; mkdir m; for i in $(seq 1 40); do head -c $((i * 97)) /dev/urandom > m/$i; done
     mkdir -p ${"n".repeat(120)}/${"o".repeat(120)} && : > ${"n".repeat(120)}/${
      "o".repeat(120)
    }/${"p".repeat(100)}`,
    src,
  );
  const want = await collect(packDir(src));
  // Sizes that split headers, bodies, padding and the end blocks anywhere.
  for (const size of [3, 511, 512, 513, 4096, 65536, 300000]) {
    const got = await readByob(packDir(src), size);
    ok(
      got.length === want.length && got.every((x, i) => x === want[i]),
      `BYOB reads of ${size} bytes give other bytes`,
    );
  }
});

Deno.test("packDir: cancelling a BYOB read midway closes every fd it opened", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await sh(
    `mkdir -p src/a/b/c && head -c 300000 /dev/urandom > src/a/b/c/big && : > src/a/z`,
    d.path,
  );
  deepEqual(fdsUnder(src), []);
  const r = packDir(src).getReader({ mode: "byob" });
  // 64 KiB: past the headers (PAX ones for ns mtimes too), inside big's body.
  const first = await r.read(new Uint8Array(65536));
  ok(!first.done);
  deepEqual(
    fdsUnder(src),
    [src, `${src}/a`, `${src}/a/b`, `${src}/a/b/c`, `${src}/a/b/c/big`].sort(),
  );
  await r.cancel();
  deepEqual(fdsUnder(src), []);
});

Deno.test("packDir: cancelled during its first read (while its walk loads), it walks nothing; a cancelled stream writes no file", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await sh(`mkdir -p src/a && head -c 300000 /dev/urandom > src/a/big`, d.path);
  let progress = 0;
  const s = packDir(src, { onProgress: () => progress++ });
  const r = s.getReader({ mode: "byob" });
  const first = r.read(new Uint8Array(65536));
  await r.cancel(); // before the walk's module has loaded
  ok((await first).done);
  await new Promise((go) => setTimeout(go, 200)); // the load settles
  deepEqual([progress, fdsUnder(src)], [0, []]);
  // Cancelled before any read: writeToFile finds nothing left to write.
  const c = packDir(src);
  await c.cancel();
  using f = await Deno.create(`${d.path}/out.tar`);
  deepEqual(await writeToFile(c, f), 0);
  deepEqual((await Deno.stat(`${d.path}/out.tar`)).size, 0);
  deepEqual(fdsUnder(src), []);
});

Deno.test("packDir: a file that shrinks or grows while it is packed fails the pack, naming it (no zeros for bytes it lost, no bytes cut off)", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  for (
    const [how, change] of [
      ["shrank", (f: string) => Deno.truncateSync(f, 1000)],
      [
        "grew",
        (f: string) =>
          Deno.writeFileSync(f, new Uint8Array(9), { append: true }),
      ],
    ] as const
  ) {
    await sh(`rm -rf src && mkdir -p src/var && : > src/a`, d.path);
    await Deno.writeFile(`${src}/var/log`, new Uint8Array(8 << 20).fill(0x41));
    const r = packDir(src).getReader();
    ok(!(await r.read()).done); // 1 MiB: the log's body has started
    change(`${src}/var/log`);
    await rejects(
      (async () => {
        while (!(await r.read()).done) { /* on to the end */ }
      })(),
      (e: unknown) =>
        e instanceof StoreError &&
        e.message.startsWith(
          `"var/log" ${how} while it was being exported (its header says 8388608 bytes)`,
        ),
    );
    deepEqual(fdsUnder(src), []);
  }
});

Deno.test("packDir: a path that is missing or not a directory errors the stream with a LayerfsError naming it", async () => {
  await using d = await tempDir();
  await Deno.writeTextFile(`${d.path}/file`, "x");
  for (const [name, code] of [["nope", "ENOENT"], ["file", "ENOTDIR"]]) {
    const path = `${d.path}/${name}`;
    await rejects(
      collect(packDir(path)),
      (e: unknown) =>
        e instanceof LayerfsError &&
        e.message ===
          `Cannot pack ${
            JSON.stringify(path)
          }: ${code}; it must be an existing directory`,
    );
  }
});

Deno.test("packDir: a walk that fails deep in the tree closes every directory it opened", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  // A symlink whose target is not UTF-8 (refused) four levels down, after
  // entries of every level were emitted.
  await sh(
    `mkdir -p src/a/b/c/d && : > src/a/f && : > src/a/b/c/e
     ln -s "$(printf 'x\\377')" src/a/b/c/d/bad && : > src/z`,
    d.path,
  );
  await rejects(collect(packDir(src)), /not valid UTF-8/);
  deepEqual(fdsUnder(src), []);
});

Deno.test("packDir: our reader sees binary xattr values, hardlink targets and exact mtimes", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await Deno.mkdir(src);
  await buildTree(src);
  const seen = new Map<string, { type: string; link: string; x?: number[] }>();
  for await (const e of readTar(packDir(src))) {
    const h = e.header;
    deepEqual([h.mtime, h.mtimeNsec], [1700000000, 123456789], h.name);
    deepEqual([h.uname, h.gname], ["", ""]);
    const x = h.xattrs.get("user.bin");
    seen.set(h.name, {
      type: h.type,
      link: h.linkname,
      ...(x ? { x: [...x] } : {}),
    });
    if (h.name === "a/b/f") deepEqual(await e.text(), "hello\n");
  }
  deepEqual(seen.get("a/b/f"), {
    type: "file",
    link: "",
    x: [0, 255, 1, 16],
  });
  deepEqual(seen.get("a/h"), { type: "hardlink", link: "a/b/f" });
  deepEqual(seen.get("fifo")?.type, "fifo");
  deepEqual(seen.has("sock"), false);
});

Deno.test("packDir: sorted by name bytes, parents before children, no ./ prefix, empty dir gives an empty archive", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await Deno.mkdir(src);
  const empty = await collect(packDir(src));
  deepEqual(empty.length, 1024);
  ok(empty.every((b) => b === 0));
  await sh(`mkdir a B; touch a.txt a/z a/0 B/x 'a b'; : > ./-`, src);
  const tar = await save(`${d.path}/o.tar`, await collect(packDir(src)));
  deepEqual(await gnuNames(tar), [
    "-",
    "B/",
    "B/x",
    "a/",
    "a/0",
    "a/z",
    "a b",
    "a.txt",
  ]);
});

Deno.test("packDir: never follows a symlinked directory", async () => {
  await using d = await tempDir();
  const src = `${d.path}/src`;
  await sh(
    `mkdir -p src outside && echo secret > outside/s && ln -s ../outside src/link`,
    d.path,
  );
  const tar = await save(`${d.path}/o.tar`, await collect(packDir(src)));
  deepEqual(await gnuNames(tar), ["link"]);
});
