/**
 * The reader's checks on hostile and broken archives: each is refused with an
 * InvalidArchive naming the entry and what is wrong, from every place a tar
 * can put the value (ustar fields, prefix, base-256, GNU L/K, PAX), while the
 * normal forms next to it keep working.
 */
import assert from "node:assert/strict";
import { InvalidArchive } from "../../../src/errors.ts";
import {
  encodeHeader,
  END_OF_ARCHIVE,
  paddingFor,
  readTar,
  type TarHeader,
  TarReader,
} from "../../../src/archive/tar/mod.ts";
import { tempDir } from "../../_privileged.ts";
import {
  concat,
  expectInvalid,
  fileHeader,
  fixChecksum,
  gnuLong,
  patchedBase256,
  patchedOctal,
  paxBlock,
  rec,
} from "./_blocks.ts";

/** Header blocks (no bodies: all sizes 0) and the end blocks. */
const archive = (...parts: Uint8Array[]) => concat(...parts, END_OF_ARCHIVE);
const entry = (name: string, extra: Partial<TarHeader> = {}) =>
  encodeHeader(fileHeader(name, 0, extra));
const link = (name: string, linkname: string) =>
  entry(name, { type: "hardlink", linkname });

/** Names (and types) the reader returns for `bytes`. */
async function names(bytes: Uint8Array): Promise<string[]> {
  const out = [];
  for await (const e of readTar(bytes)) out.push(e.header.name);
  return out;
}

const climbs = /climbs above the layer root/;

Deno.test("reader: names that climb above the root are refused, wherever the name comes from", async () => {
  // ustar name field.
  await expectInvalid(archive(entry("../x")), climbs, "../x");
  await expectInvalid(archive(entry("a/../../x")), climbs, "a/../../x");
  await expectInvalid(archive(entry("./..")), climbs, "./..");
  await expectInvalid(archive(entry("..", { type: "dir" })), climbs, "..");
  // ustar prefix + name (the writer splits names over 100 bytes).
  const long = "../" + "d".repeat(120) + "/f";
  const split = entry(long);
  assert.equal(split[345], 0x2e, "the name went to the prefix field");
  await expectInvalid(archive(split), climbs, long);
  // GNU long name.
  await expectInvalid(
    archive(gnuLong("L", "ok/../../etc/passwd"), entry("harmless")),
    climbs,
    "ok/../../etc/passwd",
  );
  // PAX path.
  await expectInvalid(
    archive(paxBlock(rec("path", "../../x")), entry("harmless")),
    climbs,
    "../../x",
  );
});

Deno.test("reader: hard-link targets that climb out, are empty or point to themselves are refused", async () => {
  const target = /hard-link target "[^"]*" climbs above the layer root/;
  await expectInvalid(archive(link("h", "../x")), target, "h");
  await expectInvalid(
    archive(gnuLong("K", "a/../../x"), link("h", "ignored")),
    target,
    "h",
  );
  await expectInvalid(
    archive(paxBlock(rec("linkpath", "/../x")), link("h", "ignored")),
    target,
    "h",
  );
  await expectInvalid(archive(link("h", "")), /without a target/, "h");
  for (
    const [name, to] of [["a", "a"], ["./a", "a"], ["a", "/a"], [
      "d/a",
      "d/./a",
    ]]
  ) {
    await expectInvalid(
      archive(entry(name), link(name, to)),
      /hard link to itself/,
      name,
    );
  }
  // Symlink targets are not paths of the archive: anything goes.
  assert.deepEqual(
    await names(archive(entry("s", { type: "symlink", linkname: "../../x" }))),
    ["s"],
  );
  // Links to other entries, by any spelling that stays inside.
  assert.deepEqual(
    await names(archive(entry("./a"), link("./b", "a"), link("c", "/x/../a"))),
    ["./a", "./b", "c"],
  );
});

Deno.test("reader: the root may only be named by a directory; empty and '..' names are refused", async () => {
  const root = /that is the layer root, which only a directory entry may name/;
  for (const name of [".", "./", "/", "a/..", "./."]) {
    await expectInvalid(archive(entry(name)), root, name);
  }
  await expectInvalid(
    archive(entry(".", { type: "symlink", linkname: "x" })),
    /a symlink cannot be named/,
    ".",
  );
  await expectInvalid(archive(link("./", "a")), /a hardlink cannot be named/);
  // An empty name field.
  const empty = entry("x");
  empty.fill(0, 0, 100);
  fixChecksum(empty);
  await expectInvalid(archive(empty), /empty name/);
  // The root as a directory, as docker, podman and GNU tar write it.
  assert.deepEqual(
    await names(
      archive(
        entry("./", { type: "dir" }),
        entry(".", { type: "dir" }),
        entry("/", { type: "dir" }),
        entry("./etc/", { type: "dir" }),
        entry("/abs/name"),
      ),
    ),
    ["./", ".", "/", "./etc/", "/abs/name"],
  );
});

Deno.test("reader: mode bits beyond 07777 must be file-type bits matching the entry", async () => {
  const mode = (h: TarHeader, octal: string) => patchedOctal(h, 100, 8, octal);
  // What old Go writers put there: accepted, and reduced to the permissions.
  const ok = archive(
    mode(fileHeader("f", 0), "100644"),
    mode(fileHeader("d/", 0, { type: "dir" }), "40755"),
    mode(fileHeader("s", 0, { type: "symlink", linkname: "f" }), "120777"),
    mode(fileHeader("h", 0, { type: "hardlink", linkname: "f" }), "100644"),
    mode(fileHeader("p", 0, { type: "fifo" }), "10644"),
    mode(
      fileHeader("c", 0, { type: "char", devmajor: 1, devminor: 3 }),
      "20666",
    ),
    mode(fileHeader("b", 0, { type: "block", devmajor: 7 }), "60640"),
    mode(fileHeader("u", 0), "4755"),
  );
  const modes = [];
  for await (const e of readTar(ok)) modes.push(e.header.mode.toString(8));
  assert.deepEqual(modes, [
    "644",
    "755",
    "777",
    "644",
    "644",
    "666",
    "640",
    "4755",
  ]);
  // Type bits of another kind.
  await expectInvalid(
    archive(mode(fileHeader("f", 0), "40755")),
    /mode 040755 has the file-type bits of a directory but the entry is a file/,
    "f",
  );
  await expectInvalid(
    archive(mode(fileHeader("d/", 0, { type: "dir" }), "100755")),
    /regular file but the entry is a dir/,
    "d/",
  );
  await expectInvalid(
    archive(mode(fileHeader("f", 0), "140755")),
    /socket/,
    "f",
  );
  // Unknown high bits.
  await expectInvalid(
    archive(mode(fileHeader("f", 0), "1000644")),
    /mode 01000644 has bits beyond the permission and file-type bits/,
    "f",
  );
  await expectInvalid(
    archive(mode(fileHeader("f", 0), "7777777")),
    /bits beyond/,
    "f",
  );
});

Deno.test("reader: uid and gid of 2^32 - 1 and above are refused, from octal, base-256 and PAX", async () => {
  const range = /out of range \(ids are 32-bit/;
  // base-256 (GNU) in the 8-byte fields: 108 uid, 116 gid.
  for (const [off, field] of [[108, "uid"], [116, "gid"]] as const) {
    for (const v of [2n ** 32n, 2n ** 32n - 1n, 2n ** 40n]) {
      const err = await expectInvalid(
        archive(patchedBase256(fileHeader("f", 0), off, v)),
        range,
        "f",
      );
      assert.match(err.message, new RegExp(`${field} ${v} `));
    }
  }
  // PAX records.
  for (const k of ["uid", "gid"]) {
    for (const v of ["4294967296", "4294967295", "99999999999999999999"]) {
      await expectInvalid(
        archive(paxBlock(rec(k, v)), entry("f")),
        new RegExp(`PAX record ${k} ${v} is out of range`),
        "f",
      );
    }
  }
  // The largest usable id, both ways.
  const r = new TarReader(
    archive(
      patchedBase256(fileHeader("a", 0), 108, 4294967294n),
      paxBlock(rec("uid", "4294967294") + rec("gid", "4294967294")),
      entry("b"),
    ),
  );
  assert.equal((await r.next())?.uid, 4294967294);
  const b = await r.next();
  assert.deepEqual([b?.uid, b?.gid], [4294967294, 4294967294]);
  // Device numbers wrap too: refused above 32 bits.
  await expectInvalid(
    archive(
      patchedBase256(fileHeader("c", 0, { type: "char" }), 329, 2n ** 32n),
    ),
    /devmajor 4294967296 is out of range/,
    "c",
  );
});

Deno.test("reader: an archive without its end blocks, or cut anywhere, is truncated", async () => {
  const body = new Uint8Array(700).fill(7);
  const one = concat(
    encodeHeader(fileHeader("a", 700)),
    body,
    paddingFor(700),
  );
  const full = concat(one, END_OF_ARCHIVE);
  assert.deepEqual(await names(full), ["a"]);
  // Right after the last entry's padding: no end-of-archive blocks.
  await expectInvalid(
    one,
    /truncated: .*before the end-of-archive blocks/,
    "a",
  );
  // Inside the header, the body, the padding.
  await expectInvalid(full.subarray(0, 100), /truncated: .*first header/);
  await expectInvalid(full.subarray(0, 512 + 300), /truncated: .*body/, "a");
  await expectInvalid(full.subarray(0, 512 + 800), /truncated: .*padding/, "a");
  // The empty input, and a PAX header with no entry after it.
  await expectInvalid(new Uint8Array(0), /truncated: .*empty/);
  await expectInvalid(
    paxBlock(rec("path", "x")),
    /truncated: .*before its entry/,
  );
  // One zero block is enough (GNU tar accepts it with a warning); a partial
  // second one, and anything after two, is not read.
  assert.deepEqual(await names(concat(one, new Uint8Array(512))), ["a"]);
  assert.deepEqual(await names(concat(one, new Uint8Array(700))), ["a"]);
  assert.deepEqual(
    await names(concat(full, new Uint8Array(10000).fill(0xee))),
    ["a"],
  );
  // Every source kind: a file (read and seek), a stream.
  await using tmp = await tempDir();
  const big = concat(
    encodeHeader(fileHeader("big", 1 << 20)),
    new Uint8Array(1 << 20),
  );
  await Deno.writeFile(`${tmp.path}/t.tar`, big);
  for (const skip of [true, false]) {
    using f = await Deno.open(`${tmp.path}/t.tar`);
    const r = new TarReader(f);
    assert.equal((await r.next())?.name, "big");
    if (!skip) await r.readBody(() => {});
    const err = await r.next().catch((e) => e);
    assert.ok(err instanceof InvalidArchive, `got ${err}`);
    assert.match(err.message, /truncated: .*end-of-archive/);
  }
  const stream = ReadableStream.from([one.slice(0, 1000), one.slice(1000)]);
  const it = readTar(stream);
  assert.equal((await it.next()).value?.header.name, "a");
  await assert.rejects(it.next(), /truncated/);
});

Deno.test("reader: PAX keys with a NUL or bytes that are not UTF-8 are refused; GNU tar's time keys and look-alikes read as what they say", async () => {
  const enc = new TextEncoder();
  /** A record whose key is raw bytes. */
  const rawRec = (key: Uint8Array, value: string) => {
    const v = enc.encode(value);
    const base = key.length + v.length + 3;
    let len = base + String(base).length;
    if (String(len).length !== String(base).length) {
      len = base + String(len).length;
    }
    return concat(
      enc.encode(`${len} `),
      key,
      enc.encode("="),
      v,
      enc.encode("\n"),
    );
  };
  const badKey = /PAX record key is not valid UTF-8/;
  for (
    const key of [
      [0x6d, 0x00, 0x69, 0x6d, 0x65], // "m\0ime": five bytes, like "mtime"
      [0x6d, 0x74, 0x69, 0x6d, 0x65, 0x00], // "mtime\0"
      [0x70, 0x61, 0x74, 0xff], // "pat\xff"
      [0xc3, 0x28], // a broken two-byte sequence
      [...enc.encode("SCHILY.xattr.user."), 0xe2, 0x82], // cut short
      new Array(80).fill(0x61).concat([0x00]), // long, then a NUL
    ]
  ) {
    await expectInvalid(
      archive(paxBlock(rawRec(new Uint8Array(key), "1")), entry("f")),
      badKey,
    );
  }
  // The time keys GNU tar writes for every file, and keys one byte off them
  // (ignored, as unknown keys are), in one header.
  const bytes = archive(
    paxBlock(
      rec("mtime", "1700000000.25") + rec("atime", "1600000000.5") +
        rec("ctime", "1500000000") + rec("mtimf", "9") + rec("xtime", "9") +
        rec("mtim", "9") + rec("SCHILY.xattr.user.é", "v"),
    ),
    entry("f"),
  );
  const r = new TarReader(bytes);
  const h = await r.next();
  assert.ok(h !== null);
  assert.deepEqual(
    [h.mtime, h.mtimeNsec, h.atime, h.atimeNsec],
    [1700000000, 250_000_000, 1600000000, 500_000_000],
  );
  assert.deepEqual([...h.xattrs.keys()], ["user.é"]);
  assert.deepEqual([...(h.pax?.keys() ?? [])].sort(), [
    "ctime",
    "mtim",
    "mtimf",
    "xtime",
  ]);
  assert.equal(await r.next(), null);
});
