import assert from "node:assert/strict";
import {
  encodeHeader,
  encodeHeaderInto,
  END_OF_ARCHIVE,
  paddingFor,
  type TarHeader,
  tarHeader,
  TarReader,
  TarWriter,
} from "../../../src/archive/tar/mod.ts";
import { isRoot, tempDir } from "../../_privileged.ts";
import { OUTPUT_CHUNK_SIZE } from "../../../src/archive/tar/writer.ts";
import { dumpTree, makeTree, type Meta, run } from "./_gnu.ts";

/** `tar -tvv`, names printed as they are (run() fixes LC_ALL=C, where GNU tar would escape non-ASCII). */
const LIST = [
  "--xattrs",
  "--xattrs-include=*",
  "--numeric-owner",
  "--quoting-style=literal",
  "-tvvf",
];

function header(name: string, extra: Partial<TarHeader> = {}): TarHeader {
  return tarHeader({ name, mtime: 1700000000, ...extra });
}

function hexToBytes(h: string): Uint8Array {
  return new Uint8Array(h.match(/../g)?.map((x) => parseInt(x, 16)) ?? []);
}

/** Builds headers from python's description of the tree (not from our reader): sorted, hardlinks to the first name. */
function headersFromTree(tree: Record<string, Meta>): TarHeader[] {
  const firstByIno = new Map<number, string>();
  const out: TarHeader[] = [];
  for (const path of Object.keys(tree).sort()) {
    const m = tree[path];
    const h = header(m.type === "dir" ? path + "/" : path, {
      mode: m.mode,
      uid: m.uid,
      gid: m.gid,
      uname: m.uid === 0 ? "root" : "",
      gname: m.gid === 0 ? "root" : "",
      mtime: m.mtime,
      mtimeNsec: m.nsec,
      xattrs: new Map(
        Object.entries(m.xattrs).map(([k, v]) => [k, hexToBytes(v)]),
      ),
    });
    if (m.type === "file") {
      const first = m.nlink > 1 ? firstByIno.get(m.ino) : undefined;
      if (first !== undefined) {
        h.type = "hardlink";
        h.linkname = first;
      } else {
        h.type = "file";
        h.size = m.size!;
        if (m.nlink > 1) firstByIno.set(m.ino, path);
      }
    } else {
      h.type = m.type;
      h.linkname = m.link ?? "";
      h.devmajor = m.major ?? 0;
      h.devminor = m.minor ?? 0;
    }
    out.push(h);
  }
  return out;
}

async function writeArchive(
  src: string,
  headers: TarHeader[],
  out: string,
): Promise<void> {
  const w = new TarWriter();
  using f = await Deno.open(out, { create: true, write: true, truncate: true });
  const done = w.readable.pipeTo(f.writable);
  for (const h of headers) {
    if (h.type === "file" && h.size > 0) {
      // Alternate body kinds: bytes, and a file stream.
      if (h.size > 1 << 20) {
        await w.add(h, (await Deno.open(`${src}/${h.name}`)).readable);
      } else await w.add(h, await Deno.readFile(`${src}/${h.name}`));
    } else await w.add(h);
  }
  await w.close();
  await done;
}

Deno.test("writer: GNU tar --compare finds no difference and GNU tar extracts the same tree", async () => {
  await using tmp = await tempDir();
  const src = `${tmp.path}/src`;
  await makeTree(src);
  const tree = await dumpTree(src);
  const ours = `${tmp.path}/ours.tar`;
  await writeArchive(src, headersFromTree(tree), ours);

  const cmp = await run("tar", [
    "--xattrs",
    "--xattrs-include=*",
    "-df",
    ours,
    "-C",
    src,
  ], { allowFail: true });
  assert.equal(cmp.stdout + cmp.stderr, "", "tar --compare output");
  assert.equal(cmp.code, 0);

  const out = `${tmp.path}/out`;
  await Deno.mkdir(out);
  await run("tar", [
    "--xattrs",
    "--xattrs-include=*",
    "-xpf",
    ours,
    "-C",
    out,
  ]);
  const back = await dumpTree(out);
  assert.deepEqual(Object.keys(back).sort(), Object.keys(tree).sort());
  for (const [p, m] of Object.entries(tree)) {
    const b = back[p];
    const strip = ({ ino: _i, ...rest }: Meta) => rest;
    if (!isRoot) {
      b.uid = m.uid;
      b.gid = m.gid;
    }
    assert.deepEqual(strip(b), strip(m), p);
    if (m.nlink > 1) {
      const twins = Object.entries(tree).filter(([, x]) => x.ino === m.ino)
        .map(([q]) => back[q].ino);
      assert.equal(new Set(twins).size, 1, `${p}: hardlinks kept`);
    }
  }
});

Deno.test("writer: re-encoding a GNU pax archive lists identically under tar -tvv", async () => {
  await using tmp = await tempDir();
  const src = `${tmp.path}/src`;
  await makeTree(src);
  const gnu = `${tmp.path}/gnu.tar`;
  await run("tar", [
    "--format=pax",
    "--xattrs",
    "--xattrs-include=*",
    "-cf",
    gnu,
    ".",
  ], { cwd: src });
  const ours = `${tmp.path}/ours.tar`;
  const w = new TarWriter();
  using f = await Deno.open(ours, { create: true, write: true });
  const done = w.readable.pipeTo(f.writable);
  using g = await Deno.open(gnu);
  const r = new TarReader(g);
  for (let h; (h = await r.next()) !== null;) {
    const parts: Uint8Array[] = [];
    await r.readBody((c) => parts.push(c.slice()));
    await w.add(h, ReadableStream.from(parts));
  }
  await w.close();
  await done;
  const a = await run("tar", [...LIST, gnu]);
  const b = await run("tar", [...LIST, ours]);
  assert.equal(b.stdout, a.stdout);
  assert.match(a.stdout, /x: +6 user\.bin/);
  assert.match(a.stdout, /link to/);
});

Deno.test("writer: headers round-trip through our reader, edge values included", async () => {
  const bin = new Uint8Array([0, 0xff, 0x0a, 0x3d, 0x80]);
  const headers: TarHeader[] = [
    header("plain.txt", { size: 3 }),
    header("ünïcode/日本.txt", { uname: "ユーザー", gname: "g".repeat(40) }),
    header("a/".repeat(60) + "split-into-prefix"), // > 100, ASCII, splittable
    header("x".repeat(120) + "/" + "y".repeat(120)), // not splittable: PAX path
    header("neg", { mtime: -1000001, mtimeNsec: 250000000 }),
    header("future", { mtime: 2 ** 40, mtimeNsec: 1 }),
    header("ids", { uid: 2 ** 31 + 5, gid: 2097152 }),
    header("dev", { type: "char", devmajor: 4095, devminor: 1048575 }),
    header("blk", { type: "block", devmajor: 8, devminor: 1 }),
    header("ln", { type: "symlink", linkname: "../".repeat(50) + "target" }),
    header("hl", { type: "hardlink", linkname: "plain.txt" }),
    header("d/", { type: "dir", mode: 0o1777 }),
    header("f", { type: "fifo", mode: 0o600, atime: 5, atimeNsec: 6 }),
    header("x", {
      xattrs: new Map([["user.bin", bin], ["user.empty", new Uint8Array()]]),
      pax: new Map([["comment", new TextEncoder().encode("hi")]]),
    }),
    header("setuid", { mode: 0o4755 }),
  ];
  const w = new TarWriter();
  const bytes = new Response(w.readable).bytes();
  for (const h of headers) {
    await w.add(h, h.size ? new Uint8Array([1, 2, 3]) : undefined);
  }
  await w.close();
  const raw = await bytes;
  const r = new TarReader(raw);
  for (const want of headers) {
    const got = await r.next();
    assert.ok(got);
    assert.deepEqual(got, want, want.name);
  }
  assert.equal(await r.next(), null);
  assert.equal(r.bytesRead, raw.length);
  // GNU tar reads it too.
  await using tmp = await tempDir();
  await Deno.writeFile(`${tmp.path}/t.tar`, raw);
  const l = await run("tar", [...LIST, `${tmp.path}/t.tar`]);
  assert.match(l.stdout, /ünïcode\/日本\.txt/);
  assert.match(l.stdout, /x{120}\/y{120}/);
  assert.match(l.stdout, /4095,1048575/);
  assert.match(l.stdout, /2147483653\/2097152/);
});

Deno.test("writer: deterministic output with sorted PAX keys", () => {
  const h = header("z".repeat(150), {
    mtimeNsec: 5,
    uid: 9_000_000,
    xattrs: new Map([
      ["user.b", new Uint8Array([2])],
      ["security.a", new Uint8Array([1])],
    ]),
  });
  const a = encodeHeader(h);
  const b = encodeHeader(structuredClone(h));
  assert.deepEqual(a, b);
  const body = new TextDecoder().decode(a.subarray(512, 1024));
  const keys = [...body.matchAll(/\d+ ([^=]+)=/g)].map((m) => m[1]);
  assert.deepEqual(keys, [
    "SCHILY.xattr.security.a",
    "SCHILY.xattr.user.b",
    "mtime",
    "path",
    "uid",
  ]);
  assert.equal(a[156], 0x78);
  assert.equal(paddingFor(5).length, 507);
  assert.equal(paddingFor(512).length, 0);
  assert.equal(END_OF_ARCHIVE.length, 1024);
});

Deno.test("writer: a streamed body of another length than header.size fails the writer", async () => {
  for (
    const body of [
      ReadableStream.from([new Uint8Array(2), new Uint8Array(3)]),
      (async function* () {
        yield new Uint8Array(1);
      })(),
    ]
  ) {
    const w = new TarWriter();
    const out = new Response(w.readable).bytes();
    await assert.rejects(
      w.add(header("f", { size: 3 }), body),
      /header\.size is 3; the archive is now incomplete/,
    );
    await assert.rejects(w.add(header("g")), /header\.size is 3/);
    await assert.rejects(out, /header\.size is 3/);
  }
});

Deno.test("writer: bytes (or none) of another length than header.size are refused before anything is written", async () => {
  const w = new TarWriter();
  const out = new Response(w.readable).bytes();
  const cases: [Parameters<TarWriter["add"]>, RegExp][] = [
    [
      [header("f", { size: 3 }), new Uint8Array(4)],
      /has 4 bytes but header\.size is 3; nothing was written/,
    ],
    [[header("f", { size: 3 })], /has 0 bytes but header\.size is 3/],
    [
      [
        header("l", { type: "symlink", linkname: "t", size: 3 }),
        new Uint8Array(3),
      ],
      /"l" is a symlink entry, which has no body, but 3 bytes were given/,
    ],
  ];
  for (const [args, re] of cases) {
    await assert.rejects(
      w.add(...args),
      (e) => e instanceof RangeError && re.test(e.message),
    );
  }
  // The writer goes on: the archive holds only what was added whole.
  await w.add(header("ok", { size: 2 }), new Uint8Array([1, 2]));
  await w.close();
  const r = new TarReader(await out);
  const names = [];
  for (let h; (h = await r.next()) !== null;) names.push(h.name);
  assert.deepEqual(names, ["ok"]);
});

Deno.test("writer: header validation errors", () => {
  assert.throws(() => encodeHeader(header("")), TypeError);
  assert.throws(() => encodeHeader(header("a\0b")), TypeError);
  assert.throws(() => encodeHeader(header("a", { uid: -1 })), RangeError);
  assert.throws(
    () =>
      encodeHeader(
        header("a", { xattrs: new Map([["a=b", new Uint8Array()]]) }),
      ),
    TypeError,
  );
});

Deno.test("writer: small entries are batched into OUTPUT_CHUNK_SIZE chunks", async () => {
  const w = new TarWriter();
  const chunks: number[] = [];
  const done = w.readable.pipeTo(
    new WritableStream({ write: (c) => void chunks.push(c.length) }),
  );
  const body = new Uint8Array(100);
  for (let i = 0; i < 5000; i++) {
    await w.add(header(`f${i}`, { size: 100 }), body);
  }
  await w.close();
  await done;
  const total = chunks.reduce((a, b) => a + b, 0);
  assert.equal(total, 5000 * 1024 + 1024);
  assert.ok(
    chunks.length <= Math.ceil(total / OUTPUT_CHUNK_SIZE) + 1,
    `${chunks.length} chunks`,
  );
});

Deno.test("writer: add waits for a slow consumer (backpressure)", async () => {
  const w = new TarWriter({ chunkSize: 4096, highWaterMark: 1 });
  let finished = false;
  const adding = (async () => {
    for (let i = 0; i < 100; i++) {
      await w.add(header(`f${i}`, { size: 4096 }), new Uint8Array(4096));
    }
    finished = true;
  })();
  // Nobody reads: the writer must stop after a bounded amount of output.
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(finished, false);
  let total = 0;
  const reading = w.readable.pipeTo(
    new WritableStream({ write: (c) => void (total += c.length) }),
  );
  await adding;
  await w.close();
  await reading;
  assert.equal(total, 100 * 4608 + 1024);
});

Deno.test("writer: encodeHeaderInto writes the same bytes in place, or says how much it needs", () => {
  const h = header("p".repeat(120) + "/" + "q".repeat(120), {
    mtimeNsec: 7,
    uid: 1 << 30,
  });
  const want = encodeHeader(h);
  const dst = new Uint8Array(4096);
  assert.equal(encodeHeaderInto(h, dst, 512), want.length);
  assert.deepEqual(dst.subarray(512, 512 + want.length), want);
  assert.ok(dst.subarray(0, 512).every((x) => x === 0));
  assert.equal(encodeHeaderInto(h, new Uint8Array(1000), 0), -want.length);
  // Unaligned offsets give the same bytes (the checksum has a 4-byte fast path).
  const odd = new Uint8Array(4096);
  assert.equal(encodeHeaderInto(h, odd, 3), want.length);
  assert.deepEqual(odd.subarray(3, 3 + want.length), want);
});

Deno.test("tarHeader: documented defaults, dirs 0755, given fields win", () => {
  const d = tarHeader({ name: "etc/", type: "dir" });
  assert.deepEqual(
    [d.type, d.mode, d.size, d.uid, d.gid, d.mtime, d.linkname, d.xattrs.size],
    ["dir", 0o755, 0, 0, 0, 0, "", 0],
  );
  const f = tarHeader({ name: "a", size: 3, mode: 0o4755, uid: 7 });
  assert.deepEqual([f.type, f.mode, f.size, f.uid], ["file", 0o4755, 3, 7]);
  assert.notEqual(
    tarHeader({ name: "x" }).xattrs,
    tarHeader({ name: "y" }).xattrs,
  );
});

Deno.test("writer: PAX records and header names, byte for byte", () => {
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const name = (b: Uint8Array) => text(b.subarray(0, 100)).replace(/\0+$/, "");
  // Sub-second mtimes: GNU tar's 9-digit fraction, leading zeros kept.
  const cases: [TarHeader, string, string][] = [
    [
      header("f", { mtime: 1796306777, mtimeNsec: 781232172 }),
      "./PaxHeaders/f",
      "30 mtime=1796306777.781232172\n",
    ],
    [
      header("a/b/", { type: "dir", mtime: 0, mtimeNsec: 5 }),
      "a/PaxHeaders/b/",
      "21 mtime=0.000000005\n",
    ],
    [
      header("n", { mtime: -1, mtimeNsec: 500000000 }), // -0.5 s
      "./PaxHeaders/n",
      "22 mtime=-0.500000000\n",
    ],
    [
      header("t", { mtime: 3, atime: 12, atimeNsec: 999999999 }),
      "./PaxHeaders/t",
      "22 atime=12.999999999\n",
    ],
    // 98 bytes plus a two-digit length would be 100: three digits, so 101.
    [
      header("x", { xattrs: new Map([["user.k", new Uint8Array(76)]]) }),
      "./PaxHeaders/x",
      `101 SCHILY.xattr.user.k=${"\0".repeat(76)}\n`,
    ],
  ];
  for (const [h, wantName, wantRecords] of cases) {
    const b = encodeHeader(h);
    assert.equal(name(b), wantName);
    assert.equal(b[156], 0x78);
    const size = parseInt(text(b.subarray(124, 135)), 8);
    assert.equal(text(b.subarray(512, 512 + size)), wantRecords, h.name);
  }
  // The PAX header's name is cut at 100 bytes; a non-ASCII name at 100 bytes of UTF-8.
  const long = "d".repeat(90) + "/" + "e".repeat(60) + ".txt";
  const b = encodeHeader(header(long, { mtimeNsec: 1 }));
  assert.equal(
    name(b),
    ("d".repeat(90) + "/PaxHeaders/" + "e".repeat(60)).slice(0, 100),
  );
  const u = encodeHeader(header("ü/" + "é".repeat(60), { mtimeNsec: 1 }));
  const want = new TextEncoder().encode("ü/PaxHeaders/" + "é".repeat(60))
    .subarray(0, 100);
  assert.deepEqual(u.subarray(0, 100), want);
});

Deno.test("writer: a writer waiting on its consumer keeps its own PAX records while others encode", async () => {
  const w = new TarWriter({ chunkSize: 4096, highWaterMark: 1 });
  const mine = Array.from(
    { length: 12 },
    (_, i) => header(`mine/${"m".repeat(110)}/${i}`, { mtimeNsec: i + 1 }),
  );
  const adding = (async () => {
    for (const h of mine) await w.add(h, undefined);
    await w.close();
  })();
  // The writer is now waiting in add, its next header planned: encode
  // others meanwhile (different records), then let it go on.
  await new Promise((r) => setTimeout(r, 20));
  for (let i = 0; i < 50; i++) {
    encodeHeader(header(`other/${"o".repeat(140)}${i}`, { uid: 1 << 30 }));
  }
  const raw = await new Response(w.readable).bytes();
  await adding;
  const r = new TarReader(raw);
  for (const want of mine) assert.deepEqual(await r.next(), want);
  assert.equal(await r.next(), null);
});

Deno.test("writer: a header encoded while another is being planned gets its own records", () => {
  // A Map whose iteration (run while "mine" is planned) encodes another header.
  class Meddling extends Map<string, Uint8Array> {
    override *entries(): MapIterator<[string, Uint8Array]> {
      encodeHeader(header("other", { mtimeNsec: 3, uid: 1 << 30 }));
      yield* super.entries();
    }
    override [Symbol.iterator](): MapIterator<[string, Uint8Array]> {
      return this.entries();
    }
  }
  const xattrs = new Meddling([["user.k", new Uint8Array([0x41])]]);
  const mine = header("mine", { mtime: 0, mtimeNsec: 5, xattrs });
  const plain = header("mine", {
    mtime: 0,
    mtimeNsec: 5,
    xattrs: new Map([["user.k", new Uint8Array([0x41])]]),
  });
  assert.deepEqual(encodeHeader(mine), encodeHeader(plain));
  const records = new TextDecoder().decode(
    encodeHeader(mine).subarray(512, 1024),
  );
  assert.match(
    records,
    /^\d+ SCHILY\.xattr\.user\.k=A\n21 mtime=0\.000000005\n\0/,
  );
});

Deno.test("writer: a header changed while add waits for the consumer is written as it is then", async () => {
  const w = new TarWriter({ chunkSize: 2048, highWaterMark: 1 });
  const headers = Array.from({ length: 6 }, (_, i) => header(`n${i}`));
  const adding = (async () => {
    for (const h of headers) await w.add(h, undefined);
    await w.close();
  })();
  await new Promise((r) => setTimeout(r, 20));
  // The writer waits with a header planned for 512 bytes: make every header
  // need a PAX path record and a sub-second mtime (far more than 512 bytes).
  const before = headers.map((h) => ({ ...h }));
  for (const h of headers) {
    h.name = "abcdefgh/".repeat(333) + h.name;
    h.mtimeNsec = 5;
  }
  const raw = await new Response(w.readable).bytes();
  await adding;
  // Each entry as it was when written: the first ones before the change, the
  // one that waited and the rest after it; every one complete.
  const r = new TarReader(raw);
  let changed = 0;
  for (let i = 0; i < headers.length; i++) {
    const got = await r.next();
    assert.ok(got);
    if (got.name === headers[i].name) {
      assert.deepEqual(got, headers[i]);
      changed++;
    } else assert.deepEqual(got, before[i]);
  }
  assert.equal(await r.next(), null);
  assert.ok(changed >= 2, `${changed} entries written after the change`);
});

Deno.test("writer: atime, atimeNsec, xattrs and pax are checked like the other fields", () => {
  assert.throws(() => encodeHeader(header("a", { atime: 1.5 })), RangeError);
  assert.throws(
    () => encodeHeader(header("a", { atime: 5, atimeNsec: 1e9 })),
    /atimeNsec of a must be 0-999999999/,
  );
  assert.throws(
    () => encodeHeader(header("a", { atime: Number.NaN, atimeNsec: 7 })),
    RangeError,
  );
  const pairs = [["user.a", new Uint8Array([1])]] as unknown as Map<
    string,
    Uint8Array
  >;
  assert.throws(
    () => encodeHeader(header("a", { xattrs: pairs })),
    /xattrs of a must be a Map/,
  );
  assert.throws(
    () => encodeHeader(header("a", { pax: {} as Map<string, Uint8Array> })),
    /pax of a must be a Map/,
  );
  assert.equal(
    encodeHeader(header("a", { atime: 5, atimeNsec: 7 })).length,
    1536,
  );
});

Deno.test("writer: refuses what its reader (and the kernel) cannot take back: ids, device numbers, type bits in mode, lone surrogates, bad PAX keys", async () => {
  const refused: [Partial<TarHeader>, RegExp][] = [
    [{ uid: 2 ** 32 - 1 }, /uid of "a" must be 0-4294967294 .*got 4294967295/],
    [{ gid: 2 ** 33 }, /gid of "a" must be 0-4294967294/],
    [
      { type: "char", devmajor: 2 ** 32 },
      /devmajor of "a" must be 0-4294967295/,
    ],
    [
      { type: "block", devminor: 2 ** 33 },
      /devminor of "a" must be 0-4294967295/,
    ],
    [
      { mode: 0o170777 },
      /mode of "a" must be permission bits, 0-0o7777, got 61951/,
    ],
    [{ name: "a\uD800b" }, /name of "a\\ud800b" holds a lone UTF-16 surrogate/],
    [{ type: "symlink", linkname: "\uDC00" }, /linkname of "a" holds a lone/],
    [{ uname: "u\uD800" }, /uname of "a" holds a lone/],
    [
      { xattrs: new Map([["user.\uD800", new Uint8Array(1)]]) },
      /xattr name "user.\\ud800" of a cannot be stored in PAX/,
    ],
    [
      { pax: new Map([["my=key", new Uint8Array(1)]]) },
      /PAX record name "my=key" of a cannot be stored in PAX/,
    ],
  ];
  for (const [fields, re] of refused) {
    const h = header(fields.name ?? "a", fields);
    assert.throws(() => encodeHeader(h), re, JSON.stringify(fields));
    const w = new TarWriter();
    const out = new Response(w.readable).bytes().catch((e) => e);
    await assert.rejects(w.add(h), re);
    assert.match(
      String(await out),
      re,
      "the archive fails, nothing half-written",
    );
  }
  // The limits themselves go through, and our reader takes them back.
  const edge = [
    header("ids", { uid: 2 ** 32 - 2, gid: 2 ** 32 - 2 }),
    header("dev", {
      type: "char",
      devmajor: 2 ** 32 - 1,
      devminor: 2 ** 32 - 1,
    }),
    header("modes", { mode: 0o7777 }),
  ];
  const w = new TarWriter();
  const bytes = new Response(w.readable).bytes();
  for (const h of edge) await w.add(h);
  await w.close();
  const r = new TarReader(await bytes);
  for (const want of edge) assert.deepEqual(await r.next(), want);
  assert.equal(await r.next(), null);
});
