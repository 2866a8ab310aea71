import assert from "node:assert/strict";
import { InvalidArchive } from "../../../src/errors.ts";
import {
  encodeHeader,
  END_OF_ARCHIVE,
  paddingFor,
  readTar,
  type TarHeader,
  TarReader,
  TarWriter,
} from "../../../src/archive/tar/mod.ts";
import { privilegedTest, tempDir } from "../../_privileged.ts";
import {
  clean,
  dumpTree,
  hex,
  makeTree,
  type Meta,
  run,
  sha256,
} from "./_gnu.ts";
import {
  concat,
  expectInvalid,
  fileHeader,
  fixChecksum,
  paxBlock,
  rec,
} from "./_blocks.ts";

type Format = "pax" | "gnu" | "ustar";

/** Archives GNU tar cannot write in ustar (name/link too long, negative time, big ids). */
const USTAR_EXCLUDES = ["./deep", "./old", "./bigid", "./mid", "./longlink"];

async function gnuTar(src: string, out: string, format: Format): Promise<void> {
  const args = [`--format=${format}`, "-cf", out];
  if (format === "pax") args.push("--xattrs", "--xattrs-include=*");
  if (format === "ustar") {
    for (const e of USTAR_EXCLUDES) args.push(`--exclude=${e}`);
  }
  await run("tar", [...args, "."], { cwd: src });
}

interface Read {
  header: TarHeader;
  body: Uint8Array;
}

async function readAll(
  source: ConstructorParameters<typeof TarReader>[0],
): Promise<Read[]> {
  const r = new TarReader(source);
  const out: Read[] = [];
  for (let h; (h = await r.next()) !== null;) {
    const parts: Uint8Array[] = [];
    await r.readBody((c) => parts.push(c.slice()));
    const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      body.set(p, at);
      at += p.length;
    }
    out.push({ header: h, body });
  }
  return out;
}

async function checkAgainstTree(
  entries: Read[],
  tree: Record<string, Meta>,
  format: Format,
): Promise<void> {
  const seen = new Set<string>();
  for (const { header: h, body } of entries) {
    const name = clean(h.name);
    if (name === "" || name === ".") continue;
    const m = tree[name];
    assert.ok(m, `${format}: ${name} is not in the tree`);
    seen.add(name);
    const ctx = `${format} ${name}`;
    assert.equal(h.mode, m.mode, `${ctx}: mode`);
    assert.equal(h.uid, m.uid, `${ctx}: uid`);
    assert.equal(h.gid, m.gid, `${ctx}: gid`);
    assert.equal(h.mtime, m.mtime, `${ctx}: mtime`);
    if (format === "pax") {
      assert.equal(h.mtimeNsec, m.nsec, `${ctx}: mtimeNsec`);
    }
    if (h.type === "hardlink") {
      const target = tree[clean(h.linkname)];
      assert.ok(target, `${ctx}: hardlink target ${h.linkname} missing`);
      assert.equal(target.ino, m.ino, `${ctx}: hardlink to another inode`);
      assert.equal(h.size, 0);
      continue;
    }
    assert.equal(h.type, m.type, `${ctx}: type`);
    if (m.type === "file") {
      assert.equal(h.size, m.size, `${ctx}: size`);
      assert.equal(await sha256(body), m.sha, `${ctx}: content`);
    } else {
      assert.equal(h.size, 0, `${ctx}: size`);
      assert.equal(body.length, 0);
    }
    if (m.type === "symlink") assert.equal(h.linkname, m.link, `${ctx}: link`);
    if (m.type === "char" || m.type === "block") {
      assert.equal(h.devmajor, m.major, `${ctx}: major`);
      assert.equal(h.devminor, m.minor, `${ctx}: minor`);
    }
    if (format === "pax") {
      const got = Object.fromEntries(
        [...h.xattrs].map(([k, v]) => [k, hex(v)]),
      );
      assert.deepEqual(got, m.xattrs, `${ctx}: xattrs`);
    }
  }
  const expected = Object.keys(tree).filter((p) =>
    format !== "ustar" ||
    !USTAR_EXCLUDES.some((e) =>
      p === e.slice(2) || p.startsWith(e.slice(2) + "/")
    )
  );
  assert.deepEqual([...seen].sort(), expected.sort(), `${format}: entries`);
}

for (const format of ["pax", "gnu", "ustar"] as const) {
  Deno.test(`reader: GNU tar --format=${format} archives parse into the tree's headers`, async () => {
    await using tmp = await tempDir();
    const src = `${tmp.path}/src`;
    await makeTree(src);
    const tree = await dumpTree(src);
    const tarPath = `${tmp.path}/t.tar`;
    await gnuTar(src, tarPath, format);
    using f = await Deno.open(tarPath);
    await checkAgainstTree(await readAll(f), tree, format);
  });
}

Deno.test("reader: every source kind and chunking gives the same entries", async () => {
  await using tmp = await tempDir();
  const src = `${tmp.path}/src`;
  await makeTree(src);
  const tarPath = `${tmp.path}/t.tar`;
  await gnuTar(src, tarPath, "pax");
  const bytes = await Deno.readFile(tarPath);
  const want = await readAll(bytes);
  assert.ok(want.length > 20);

  const stream = (await Deno.open(tarPath)).readable;
  assert.deepEqual(await readAll(stream), want);

  async function* pieces(size: number) {
    for (let i = 0; i < bytes.length; i += size) {
      yield bytes.slice(i, i + size);
    }
  }
  for (const size of [61, 511, 513, 65536 + 3]) {
    assert.deepEqual(await readAll(pieces(size)), want, `chunks of ${size}`);
  }
  // Byte by byte through the headers of a small archive.
  const small = bytes.subarray(0, 20 * 512);
  const smallWant = await readAll(small).catch((e) => e);
  const smallGot = await readAll((async function* () {
    for (let i = 0; i < small.length; i++) yield small.slice(i, i + 1);
  })()).catch((e) => e);
  const norm = (x: unknown) => x instanceof Error ? x.message : x;
  assert.deepEqual(norm(smallGot), norm(smallWant));
  const plain = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < bytes.length; i += 100_000) {
        c.enqueue(bytes.slice(i, i + 100_000));
      }
      c.close();
    },
  });
  assert.deepEqual(await readAll(plain), want);
});

Deno.test("reader: base-256 numbers and negative mtimes from GNU tar", async () => {
  await using tmp = await tempDir();
  await Deno.writeTextFile(`${tmp.path}/f`, "x");
  await run("tar", [
    "--format=gnu",
    "--mtime=@-1000000",
    "--owner=3000000",
    "--group=4000000",
    "--numeric-owner",
    "-cf",
    "t.tar",
    "f",
  ], { cwd: tmp.path });
  const raw = await Deno.readFile(`${tmp.path}/t.tar`);
  assert.equal(raw[108] & 0x80, 0x80, "GNU tar used base-256 for the uid");
  const [e] = await readAll(raw);
  assert.equal(e.header.mtime, -1000000);
  assert.equal(e.header.uid, 3000000);
  assert.equal(e.header.gid, 4000000);
});

Deno.test("reader: end of archive and trailing data", async () => {
  const one = concat(
    encodeHeader(fileHeader("a", 3)),
    new Uint8Array([1, 2, 3]),
    paddingFor(3),
  );
  // Two zero blocks end the archive; what follows is never read.
  const r = new TarReader(
    concat(one, END_OF_ARCHIVE, new Uint8Array(700).fill(7)),
  );
  assert.equal((await r.next())?.name, "a");
  assert.equal(await r.next(), null);
  assert.equal(await r.next(), null);
  assert.equal(r.bytesRead, 512 + 512 + 1024);
  // One zero block then EOF (some writers; GNU tar warns) ends too.
  assert.deepEqual((await readAll(concat(one, new Uint8Array(512)))).length, 1);
  // The empty archive is its two zero blocks.
  assert.deepEqual(await readAll(END_OF_ARCHIVE), []);
});

Deno.test("reader: corrupt and truncated archives are InvalidArchive naming the entry, and sticky", async () => {
  const body = new Uint8Array(2000).fill(9);
  const good = concat(
    encodeHeader(fileHeader("first", 3)),
    new Uint8Array([1, 2, 3]),
    paddingFor(3),
    encodeHeader(fileHeader("second", 2000)),
    body,
    paddingFor(2000),
    END_OF_ARCHIVE,
  );
  assert.equal((await readAll(good)).length, 2);

  // Truncated inside the body of "second".
  await expectInvalid(
    good.subarray(0, 1024 + 512 + 700),
    /truncated/,
    "second",
  );
  // Truncated inside the second header.
  await expectInvalid(good.subarray(0, 1024 + 100), /truncated/, "first");
  // Bad checksum.
  const bad = good.slice();
  bad[1024 + 3] ^= 1;
  await expectInvalid(bad, /checksum/, "first");
  // A zero block followed by a header.
  await expectInvalid(
    concat(new Uint8Array(512), good),
    /zero block is followed by data/,
  );
  // Malformed octal.
  const oct = good.slice();
  oct[100] = 0x39; // '9' in the mode field
  fixChecksum(oct);
  await expectInvalid(oct, /malformed mode/, "first");
  // Not a tar at all.
  await expectInvalid(
    new TextEncoder().encode("hello world".repeat(100)),
    /checksum/,
  );
});

Deno.test("reader: sizes beyond 2^53 and oversized PAX/names are refused", async () => {
  // base-256 size of 2^60.
  const huge = encodeHeader(fileHeader("huge", 0));
  huge.fill(0, 124, 136);
  huge[124] = 0x80;
  huge[128] = 0x10; // 2^60 = 0x1000000000000000 over the last 8 bytes
  fixChecksum(huge);
  await expectInvalid(
    concat(huge, END_OF_ARCHIVE),
    /size .* out of range/,
    "huge",
  );
  // PAX size beyond 2^53.
  await expectInvalid(
    concat(
      paxBlock(rec("size", "18014398509481984")),
      encodeHeader(fileHeader("p", 0)),
      END_OF_ARCHIVE,
    ),
    /size/,
  );
  // PAX header over the cap.
  const bigPax = rec("comment", "z".repeat(2 << 20));
  await expectInvalid(
    concat(paxBlock(bigPax), encodeHeader(fileHeader("p", 0)), END_OF_ARCHIVE),
    /maxPaxSize/,
  );
  // Name over 4096 bytes, a component over 255, too deep, NUL in a name.
  const withPath = (p: string) =>
    concat(
      paxBlock(rec("path", p)),
      encodeHeader(fileHeader("p", 0)),
      END_OF_ARCHIVE,
    );
  await expectInvalid(withPath("a/".repeat(2100) + "f"), /maxNameLength/);
  await expectInvalid(withPath("x".repeat(256)), /maxComponentLength/);
  await expectInvalid(withPath("x/".repeat(1100) + "f"), /maxDepth/);
  await expectInvalid(withPath("a\0b"), /NUL/);
  // GNU long name over the cap.
  const L = encodeHeader(fileHeader("././@LongLink", 5000));
  L[156] = 0x4c;
  fixChecksum(L);
  await expectInvalid(
    concat(L, new Uint8Array(5000).fill(0x61), paddingFor(5000)),
    /maxNameLength/,
  );
  // Caps are options.
  const many = concat(
    ...Array.from(
      { length: 5 },
      (_, i) => encodeHeader(fileHeader(`f${i}`, 0)),
    ),
    END_OF_ARCHIVE,
  );
  const r = new TarReader(many, { maxEntries: 3 });
  for (let i = 0; i < 3; i++) assert.ok(await r.next());
  await assert.rejects(r.next(), /maxEntries/);
  const ok = new TarReader(withPath("x".repeat(300)), {
    maxComponentLength: 400,
  });
  assert.equal((await ok.next())?.name, "x".repeat(300));
});

Deno.test("reader: GNU sparse files and unknown types are refused with the entry's name", async () => {
  await using tmp = await tempDir();
  const f = await Deno.open(`${tmp.path}/sparse`, {
    create: true,
    write: true,
  });
  await f.truncate(1 << 20);
  await f.seek(1 << 19, Deno.SeekMode.Start);
  await f.write(new Uint8Array([1]));
  f.close();
  for (const format of ["gnu", "pax"]) {
    await run("tar", [
      `--format=${format}`,
      "--sparse",
      "-cf",
      `${format}.tar`,
      "sparse",
    ], {
      cwd: tmp.path,
    });
    const err = await expectInvalid(
      await Deno.readFile(`${tmp.path}/${format}.tar`),
      /sparse/,
    );
    assert.match(err.entry ?? "", /sparse/);
  }
  // A volume label ('V').
  await run("tar", ["--format=gnu", "-V", "label", "-cf", "v.tar", "sparse"], {
    cwd: tmp.path,
  });
  await expectInvalid(
    await Deno.readFile(`${tmp.path}/v.tar`),
    /unsupported entry type 'V'/,
    "label",
  );
});

Deno.test("reader: type '7' and NUL are regular files; NUL with a slash is a directory", async () => {
  const h7 = encodeHeader(fileHeader("seven", 2));
  h7[156] = 0x37;
  fixChecksum(h7);
  const h0 = encodeHeader(fileHeader("nul", 1));
  h0[156] = 0;
  fixChecksum(h0);
  const hd = encodeHeader(fileHeader("olddir/", 0));
  hd[156] = 0;
  fixChecksum(hd);
  const got = await readAll(
    concat(
      h7,
      new Uint8Array([1, 2]),
      paddingFor(2),
      h0,
      new Uint8Array([3]),
      paddingFor(1),
      hd,
      END_OF_ARCHIVE,
    ),
  );
  assert.deepEqual(
    got.map((e) => [e.header.name, e.header.type, [...e.body]]),
    [
      ["seven", "file", [1, 2]],
      ["nul", "file", [3]],
      ["olddir/", "dir", []],
    ],
  );
});

Deno.test("reader: PAX records override fields; global headers give defaults; binary xattrs kept", async () => {
  const bin = new Uint8Array([0, 0xff, 0x0a, 0x3d, 0x20, 0x80]);
  const enc = new TextEncoder();
  const xattrRec = (() => {
    const key = enc.encode("SCHILY.xattr.user.bin=");
    const base = key.length + bin.length + 2; // " " and "\n"
    let len = base + String(base).length;
    if (String(len).length !== String(base).length) {
      len = base + String(len).length;
    }
    return concat(enc.encode(`${len} `), key, bin, enc.encode("\n"));
  })();
  const local = concat(
    enc.encode(
      rec("path", "über/long/" + "p".repeat(150)) +
        rec("mtime", "1700000000.5") +
        rec("atime", "-1.25") + rec("uid", "5000000") + rec("size", "4") +
        rec("comment", "hi"),
    ),
    xattrRec,
  );
  const archive = concat(
    paxBlock(
      rec("uid", "77") + rec("gid", "88") + rec("uname", "glob") +
        rec("path", "ignored"),
      "g",
    ),
    paxBlock(local),
    encodeHeader(fileHeader("short", 0)), // size field 0: the PAX size (4) wins
    new Uint8Array([1, 2, 3, 4]),
    paddingFor(4),
    encodeHeader(fileHeader("second", 0)),
    END_OF_ARCHIVE,
  );
  const [a, b] = await readAll(archive);
  assert.equal(a.header.name, "über/long/" + "p".repeat(150));
  assert.deepEqual([...a.body], [1, 2, 3, 4]);
  assert.equal(a.header.mtime, 1700000000);
  assert.equal(a.header.mtimeNsec, 500000000);
  assert.equal(a.header.atime, -2);
  assert.equal(a.header.atimeNsec, 750000000);
  assert.equal(a.header.uid, 5000000);
  assert.equal(a.header.gid, 88);
  assert.equal(a.header.uname, "glob");
  assert.deepEqual([...a.header.xattrs.get("user.bin")!], [...bin]);
  assert.equal(new TextDecoder().decode(a.header.pax?.get("comment")), "hi");
  assert.equal(b.header.name, "second");
  assert.equal(b.header.uid, 77);
  assert.equal(b.header.mtimeNsec, 0);
  assert.equal(b.header.xattrs.size, 0);
});

Deno.test("reader: keepOtherPax false drops only the records it does not interpret", async () => {
  const enc = new TextEncoder();
  const archive = () =>
    concat(
      paxBlock(
        rec("ctime", "1700000001.25") + rec("comment", "hi") +
          rec("mtime", "1700000000.5") + rec("path", "renamed") +
          rec("SCHILY.xattr.user.a", "v") + rec("uid", "4242"),
      ),
      encodeHeader(fileHeader("short", 2)),
      enc.encode("ok"),
      paddingFor(2),
      END_OF_ARCHIVE,
    );
  const read = async (options: { keepOtherPax?: boolean }) => {
    const r = new TarReader(archive(), options);
    const h = (await r.next())!;
    const parts: number[] = [];
    await r.readBody((c) => parts.push(...c));
    assert.equal(await r.next(), null);
    return { h, body: new TextDecoder().decode(new Uint8Array(parts)) };
  };
  const kept = await read({});
  assert.deepEqual(
    [...kept.h.pax!.entries()].map((
      [k, v],
    ) => [k, new TextDecoder().decode(v)]),
    [["ctime", "1700000001.25"], ["comment", "hi"]],
  );
  const dropped = await read({ keepOtherPax: false });
  assert.equal(dropped.h.pax, undefined);
  // Everything the reader interprets is the same either way.
  for (const { h, body } of [kept, dropped]) {
    assert.equal(h.name, "renamed");
    assert.equal(h.mtime, 1700000000);
    assert.equal(h.mtimeNsec, 500000000);
    assert.equal(h.uid, 4242);
    assert.equal(new TextDecoder().decode(h.xattrs.get("user.a")), "v");
    assert.equal(body, "ok");
  }
});

Deno.test("reader: readBody delivers buffered bodies synchronously; skipBody and auto-skip", async () => {
  const archive = concat(
    encodeHeader(fileHeader("a", 3)),
    new Uint8Array([1, 2, 3]),
    paddingFor(3),
    encodeHeader(fileHeader("b", 600)),
    new Uint8Array(600).fill(5),
    paddingFor(600),
    encodeHeader(fileHeader("c", 1)),
    new Uint8Array([7]),
    paddingFor(1),
    END_OF_ARCHIVE,
  );
  const r = new TarReader(archive);
  await r.next();
  let got: number[] = [];
  const p = r.readBody((c) => got = [...c]);
  assert.deepEqual(got, [1, 2, 3], "delivered before the promise settles");
  await p;
  assert.equal((await r.next())?.name, "b");
  await r.skipBody();
  assert.equal((await r.next())?.name, "c");
  assert.equal(await r.next(), null);
  // next() skips unread bodies.
  const r2 = new TarReader(archive);
  const names = [];
  for (let h; (h = await r2.next()) !== null;) names.push(h.name);
  assert.deepEqual(names, ["a", "b", "c"]);
  assert.equal(r2.bytesRead, archive.length);
});

Deno.test("readTar: entries with streaming bodies, bytes() and text()", async () => {
  const w = new TarWriter();
  const out = new Response(w.readable).bytes();
  await w.add(fileHeader("one", 5), new TextEncoder().encode("hello"));
  await w.add(fileHeader("two", 3 << 20), new Uint8Array(3 << 20).fill(1));
  await w.add(fileHeader("three", 3), new TextEncoder().encode("abc"));
  await w.add(fileHeader("four", 2), new TextEncoder().encode("zz"));
  await w.close();
  const seen: string[] = [];
  let stale: ReadableStream<Uint8Array> | undefined;
  for await (const e of readTar(await out)) {
    seen.push(e.header.name);
    if (e.header.name === "one") assert.equal(await e.text(), "hello");
    if (e.header.name === "two") {
      let n = 0;
      for await (const c of e.body) {
        assert.ok(c.every((x) => x === 1));
        n += c.length;
      }
      assert.equal(n, 3 << 20);
    }
    if (e.header.name === "three") stale = e.body; // left unread: skipped
    if (e.header.name === "four") {
      assert.deepEqual([...await e.bytes()], [0x7a, 0x7a]);
      await assert.rejects(stale!.getReader().read(), /read it before moving/);
    }
  }
  assert.deepEqual(seen, ["one", "two", "three", "four"]);
  // Errors surface from the iteration as InvalidArchive.
  const it = readTar(new Uint8Array(512).fill(1));
  await assert.rejects(it.next(), InvalidArchive);
});

Deno.test("reader: an input that ends after a PAX header says so, even when the reader keeps none of its records", async () => {
  // ctime alone: with keepOtherPax false the reader stores nothing for it.
  for (const keepOtherPax of [false, true]) {
    const r = new TarReader(paxBlock(rec("ctime", "1700000001.25")), {
      keepOtherPax,
    });
    await assert.rejects(
      () => r.next(),
      (e) =>
        e instanceof InvalidArchive &&
        /after a PAX or GNU long-name header, before its entry/.test(e.message),
    );
  }
});

Deno.test("reader: big bodies of a file are skipped by seeking; a truncated file still fails", async () => {
  await using tmp = await tempDir();
  const big = new Uint8Array(3 << 20).fill(3);
  const archive = concat(
    encodeHeader(fileHeader("small", 10)),
    new Uint8Array(10),
    paddingFor(10),
    encodeHeader(fileHeader("big", big.length)),
    big,
    encodeHeader(fileHeader("after", 1)),
    new Uint8Array([4]),
    paddingFor(1),
    END_OF_ARCHIVE,
  );
  await Deno.writeFile(`${tmp.path}/t.tar`, archive);
  {
    using f = await Deno.open(`${tmp.path}/t.tar`);
    const r = new TarReader(f);
    const names = [];
    for (let h; (h = await r.next()) !== null;) names.push(h.name);
    assert.deepEqual(names, ["small", "big", "after"]);
    assert.equal(r.bytesRead, archive.length);
  }
  {
    // Skip then read: the file position stays in step.
    using f = await Deno.open(`${tmp.path}/t.tar`);
    const r = new TarReader(f);
    await r.next();
    await r.next();
    await r.skipBody();
    assert.equal((await r.next())?.name, "after");
    let got: number[] = [];
    await r.readBody((c) => got = [...c]);
    assert.deepEqual(got, [4]);
  }
  await Deno.writeFile(`${tmp.path}/cut.tar`, archive.subarray(0, 2 << 20));
  using f = await Deno.open(`${tmp.path}/cut.tar`);
  const r = new TarReader(f);
  assert.equal((await r.next())?.name, "small");
  assert.equal((await r.next())?.name, "big");
  const err = await r.next().catch((e) => e);
  assert.ok(err instanceof InvalidArchive);
  assert.match(err.message, /truncated/);
  assert.equal(err.entry, "big");
});

privilegedTest(
  "reader: devices, big ids and owners from GNU tar (root: mknod, chown)",
  async () => {
    await using tmp = await tempDir();
    const src = `${tmp.path}/src`;
    await makeTree(src);
    const tree = await dumpTree(src);
    // The tree really has what only root can make.
    assert.equal(tree["null"]?.type, "char");
    assert.equal(tree["blk"]?.type, "block");
    assert.equal(tree["bigid"]?.uid, 3000000);
    for (const format of ["pax", "gnu"] as const) {
      await gnuTar(src, `${tmp.path}/${format}.tar`, format);
      const got = new Map(
        (await readAll(await Deno.readFile(`${tmp.path}/${format}.tar`)))
          .map((e) => [clean(e.header.name), e.header]),
      );
      assert.deepEqual(
        [
          got.get("null")?.type,
          got.get("null")?.devmajor,
          got.get("null")?.devminor,
        ],
        ["char", 1, 3],
      );
      assert.deepEqual(
        [
          got.get("blk")?.type,
          got.get("blk")?.devmajor,
          got.get("blk")?.devminor,
        ],
        ["block", 7, 200],
      );
      assert.deepEqual([got.get("bigid")?.uid, got.get("bigid")?.gid], [
        3000000,
        4000000,
      ]);
      assert.deepEqual([got.get("link")?.uid, got.get("link")?.gid], [42, 43]);
    }
  },
);
