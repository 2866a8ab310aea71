/**
 * Tar-split records: a layer applied from a tar is exported again as that
 * tar, byte for byte (GNU tar archives with PAX long names and xattrs, GNU
 * long names, hard links, symlinks, a 10 KiB record size and trailing
 * zeros; compressed input; every backend), and a layer that changed since
 * is refused with LayerNotExact, never exported wrong.
 */

import assert from "node:assert/strict";
import { LayerNotExact, openStore, type Store } from "../../../mod.ts";
import { findLeftovers } from "../../../src/store/recovery.ts";
import { StoreLayout } from "../../../src/layout.ts";
import { vfsBackend } from "../../../src/backends/vfs.ts";
import { privilegedTest, tempDir } from "../../_privileged.ts";
import { sameBytes } from "../../_bytes.ts";
import { layerTar, run } from "../../image/_images.ts";
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

/** A tree with the odd but valid things GNU tar writes. */
async function oddTree(dir: string): Promise<void> {
  const deep = `${dir}/d/${"x".repeat(120)}/${"y".repeat(120)}`;
  await Deno.mkdir(deep, { recursive: true });
  await Deno.writeTextFile(`${deep}/${"z".repeat(150)}`, "long\n".repeat(99));
  await Deno.writeTextFile(`${dir}/d/small`, "hi");
  await Deno.writeFile(`${dir}/empty`, new Uint8Array(0));
  await Deno.writeFile(
    `${dir}/big`,
    new Uint8Array(3 << 20).map((_, i) => (i * 7) % 253),
  );
  await Deno.link(`${dir}/d/small`, `${dir}/hardlink`);
  await Deno.symlink("d/small", `${dir}/symlink`);
  await run("setfattr", ["-n", "user.note", "-v", "kept", `${dir}/d/small`]);
}

/**
 * A pax tar of {@link oddTree} (GNU tar, `extra` options), a vfs store at
 * `t/s`, and a function that reads a layer's `exactDiff` to its end.
 */
async function oddStore(t: string, extra: string[] = []) {
  await Deno.mkdir(`${t}/src`);
  await oddTree(`${t}/src`);
  await run("tar", [
    "--format=pax",
    ...extra,
    "-cf",
    `${t}/a.tar`,
    "-C",
    `${t}/src`,
    ".",
  ]);
  const bytes = await Deno.readFile(`${t}/a.tar`);
  const store = await openStore({ root: `${t}/s`, backend: "vfs" });
  const drain = async (id: string) =>
    await new Response(await store.exactDiff(id)).bytes();
  return { bytes, store, drain };
}

/** GNU tar archives of `src`, as the test names them. */
async function archives(t: string, src: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const tar = async (name: string, ...args: string[]) => {
    await run("tar", [...args, "-cf", `${t}/${name}.tar`, "-C", src, "."]);
    out.set(name, `${t}/${name}.tar`);
  };
  await tar("pax-xattrs-b20", "--format=pax", "--xattrs", "-b", "20");
  await tar("gnu-longnames", "--format=gnu");
  await tar("ustar-b20", "--format=posix", "-b", "20", "--numeric-owner");
  // Trailing zeros beyond the two end blocks (and not a block multiple).
  const gnu = await Deno.readFile(out.get("gnu-longnames")!);
  const padded = new Uint8Array(gnu.length + 7000);
  padded.set(gnu);
  await Deno.writeFile(`${t}/trailing.tar`, padded);
  out.set("trailing", `${t}/trailing.tar`);
  return out;
}

/** A LayerNotExact whose message matches `re`. */
const notExact = (re: RegExp) => (e: unknown) =>
  e instanceof LayerNotExact && re.test(e.message);

async function exact(store: Store, id: string): Promise<Uint8Array> {
  const s = await store.exactDiff(id);
  assert.ok(s, `layer ${id} has a record`);
  return await new Response(s).bytes();
}

for (const backend of ["vfs", "overlay"] as const) {
  privilegedTest(
    `tarsplit (${backend}): a layer whose read-only view was read is still exported byte for byte`,
    async () => {
      await using tmp = await tempDir();
      const t = tmp.path;
      await Deno.mkdir(`${t}/src`);
      await oddTree(`${t}/src`);
      await run("tar", [
        "--format=pax",
        "-cf",
        `${t}/a.tar`,
        "-C",
        `${t}/src`,
        ".",
      ]);
      const bytes = await Deno.readFile(`${t}/a.tar`);
      const store = await openStore({ root: `${t}/s`, backend });
      try {
        // The same tree on itself: every directory is in both layers, so
        // overlay merges each (where it used to write origin xattrs).
        for (const [id, parent] of [["base", undefined], ["img", "base"]]) {
          using f = await Deno.open(`${t}/a.tar`);
          await store.applyDiff(id!, parent, f);
        }
        const view = await store.get("img");
        const walk = async (dir: string): Promise<number> => {
          let n = 0;
          for await (const e of Deno.readDir(dir)) {
            await Deno.lstat(`${dir}/${e.name}`);
            n++;
            if (e.isDirectory) n += await walk(`${dir}/${e.name}`);
          }
          return n;
        };
        assert.ok((await walk(view)) > 5);
        await store.put("img");
        assert.ok(sameBytes(await exact(store, "img"), bytes));
        const xattrs = await run("getfattr", [
          "-R",
          "-d",
          "-m",
          "-",
          "--absolute-names",
          (await store.metadata("img")).diff,
        ]);
        assert.doesNotMatch(xattrs, /overlay/);
      } finally {
        await store.close();
      }
    },
  );

  privilegedTest(
    `tarsplit (${backend}): GNU tar archives round-trip byte for byte`,
    async () => {
      await using tmp = await tempDir();
      const t = tmp.path;
      await Deno.mkdir(`${t}/src`);
      await oddTree(`${t}/src`);
      const store = await openStore({ root: `${t}/s`, backend });
      try {
        let n = 0;
        for (const [name, path] of await archives(t, `${t}/src`)) {
          const bytes = await Deno.readFile(path);
          const id = `l${n++}`;
          // From a file (the reader's fast path), on a parent.
          using f = await Deno.open(path);
          await store.applyDiff(id, n > 1 ? "l0" : undefined, f);
          const again = await exact(store, id);
          assert.ok(sameBytes(again, bytes), `${name} round-trips`);
        }
        // Compressed input: the record is of the uncompressed tar.
        const plain = await Deno.readFile(`${t}/pax-xattrs-b20.tar`);
        const gz = ReadableStream.from([plain]).pipeThrough(
          new CompressionStream("gzip"),
        );
        await store.applyDiff("gz", undefined, gz);
        assert.ok(sameBytes(await exact(store, "gz"), plain));
        // No record: made empty, or by commit.
        await store.create("empty");
        assert.equal(await store.exactDiff("empty"), null);
        await store.createReadWrite("ctr", "l0");
        await store.commit("ctr", "committed");
        assert.equal(await store.exactDiff("committed"), null);
      } finally {
        store.close();
      }
    },
  );
}

privilegedTest(
  "tarsplit: whiteouts (overlay 0/0 char devices) and opaque dirs round-trip",
  async () => {
    await using tmp = await tempDir();
    const t = tmp.path;
    await Deno.mkdir(`${t}/src/dir`, { recursive: true });
    await Deno.writeTextFile(`${t}/src/.wh.gone`, "");
    await Deno.writeTextFile(`${t}/src/dir/.wh..wh..opq`, "");
    await Deno.writeTextFile(`${t}/src/dir/kept`, "kept\n");
    await run("tar", [
      "--format=pax",
      "-cf",
      `${t}/wh.tar`,
      "-C",
      `${t}/src`,
      ".",
    ]);
    const bytes = await Deno.readFile(`${t}/wh.tar`);
    const store = await openStore({ root: `${t}/s`, backend: "overlay" });
    try {
      await store.create("base");
      await store.applyDiff("top", "base", bytes);
      const st = await Deno.lstat(`${t}/s/diff/top/gone`);
      assert.ok(st.isCharDevice); // the upper dir's whiteout
      assert.ok(sameBytes(await exact(store, "top"), bytes));
    } finally {
      store.close();
    }
  },
);

privilegedTest(
  "tarsplit: a layer changed since is refused with LayerNotExact, naming the file",
  async () => {
    await using tmp = await tempDir();
    const t = tmp.path;
    const { bytes, store, drain } = await oddStore(t);
    try {
      for (const id of ["same-size", "longer", "gone", "symlinked"]) {
        await store.applyDiff(id, undefined, bytes);
      }
      // Same size, other content: only the crc32 (and sha256) can tell.
      const big = `${t}/s/diff/same-size/big`;
      const b = await Deno.readFile(big);
      b[12345] ^= 1;
      await Deno.writeFile(big, b);
      await assert.rejects(drain("same-size"), notExact(/big/));
      await Deno.writeTextFile(`${t}/s/diff/longer/d/small`, "hi!");
      await assert.rejects(
        drain("longer"),
        notExact(/(hardlink|d\/small) has 3 bytes/),
      );
      await Deno.remove(`${t}/s/diff/gone/empty`);
      await assert.rejects(
        drain("gone"),
        notExact(/empty cannot be opened/),
      );
      // A symlink where the file was is never followed.
      await Deno.remove(`${t}/s/diff/symlinked/big`);
      await Deno.symlink("/etc/passwd", `${t}/s/diff/symlinked/big`);
      await assert.rejects(drain("symlinked"), notExact(/big/));
      // An expected digest that is not the tar's.
      await store.applyDiff("ok", undefined, bytes);
      await assert.rejects(
        new Response(await store.exactDiff("ok", { sha256: "0".repeat(64) }))
          .bytes(),
        LayerNotExact,
      );
      assert.ok(sameBytes(await drain("ok"), bytes));
    } finally {
      store.close();
    }
  },
);

privilegedTest(
  "tarsplit: what the record cannot see is found by ctime: a file added, a mode, owner or xattr changed in place",
  async () => {
    await using tmp = await tempDir();
    const t = tmp.path;
    const { bytes, store, drain } = await oddStore(t, ["--xattrs"]);
    const changes: [string, (d: string) => Promise<unknown>, RegExp][] = [
      [
        "added",
        (d) => Deno.writeTextFile(`${d}/d/new`, "x"),
        /exactly: d(\/new)? changed after/,
      ],
      [
        "chmod",
        (d) => Deno.chmod(`${d}/big`, 0o600),
        /exactly: big changed after/,
      ],
      [
        "chown",
        (d) => Deno.chown(`${d}/empty`, 1234, 1234),
        /exactly: empty changed after/,
      ],
      [
        "xattr",
        (d) =>
          run("setfattr", ["-n", "user.note", "-v", "new", `${d}/d/small`]),
        /exactly: (d\/small|hardlink) changed after/,
      ],
      [
        "top",
        (d) => Deno.chmod(d, 0o700),
        /exactly: its top directory changed after/,
      ],
    ];
    try {
      for (const [id] of changes) await store.applyDiff(id, undefined, bytes);
      // Past the kernel's coarse clock tick, so a change gets a later ctime.
      await new Promise((r) => setTimeout(r, 50));
      for (const [id, change, re] of changes) {
        assert.ok(sameBytes(await drain(id), bytes), `${id} before the change`);
        await change(`${t}/s/diff/${id}`);
        await assert.rejects(
          drain(id),
          notExact(re),
          id,
        );
      }
    } finally {
      store.close();
    }
  },
);

privilegedTest(
  "tarsplit: the record goes with its layer, and an orphan record is a leftover",
  async () => {
    await using tmp = await tempDir();
    const t = tmp.path;
    const store = await openStore({ root: `${t}/s`, backend: "vfs" });
    try {
      await Deno.mkdir(`${t}/src`);
      await Deno.writeTextFile(`${t}/src/f`, "f\n");
      await run("tar", ["-cf", `${t}/a.tar`, "-C", `${t}/src`, "."]);
      await store.applyDiff("a", undefined, await Deno.readFile(`${t}/a.tar`));
      await Deno.lstat(`${t}/s/tarsplit/a`);
      await store.remove("a");
      await assert.rejects(
        Deno.lstat(`${t}/s/tarsplit/a`),
        Deno.errors.NotFound,
      );
      // A crash between publishing the record and the commit point.
      await Deno.writeTextFile(`${t}/s/tarsplit/ghost`, "x");
      assert.deepEqual(
        await findLeftovers(new StoreLayout(`${t}/s`), vfsBackend),
        [{ kind: "orphan", path: "tarsplit/ghost" }],
      );
      await store.recover();
      await assert.rejects(
        Deno.lstat(`${t}/s/tarsplit/ghost`),
        Deno.errors.NotFound,
      );
    } finally {
      store.close();
    }
  },
);

Deno.test({
  name:
    "tarsplit: applyDiffChecked takes the caller's sha256 of the tar (hashed once); a wrong one is caught by exactDiff; compressed input hashes itself",
  sanitizeResources: false,
  async fn() {
    await using tmp = await tempDir();
    const t = tmp.path;
    await Deno.mkdir(`${t}/src/d`, { recursive: true });
    for (let i = 0; i < 50; i++) {
      await Deno.writeTextFile(`${t}/src/d/f${i}`, "x".repeat(i * 37));
    }
    await run("tar", [
      "--format=pax",
      "-cf",
      `${t}/a.tar`,
      "-C",
      `${t}/src`,
      ".",
    ]);
    const plain = await Deno.readFile(`${t}/a.tar`);
    const bytes = new Uint8Array(plain.length + 3000); // trailing zeros too
    bytes.set(plain);
    const store = await openStore({ root: `${t}/s`, backend: "vfs" });
    /** `bytes` in chunks, hashed as they are read (as an image load does). */
    const hashed = (input: Uint8Array) => {
      const h = createHash("sha256");
      let calls = 0;
      const stream = ReadableStream.from((function* () {
        for (let at = 0; at < input.length; at += 1000) {
          const c = input.slice(at, at + 1000);
          h.update(c);
          yield c;
        }
      })());
      return {
        stream,
        // Of what was read when asked: the whole tar only if asked at the end.
        digest: () => (calls++, h.copy().digest("hex")),
        calls: () => calls,
      };
    };
    const exactOf = async (id: string) =>
      await new Response(await store.exactDiff(id)).bytes();
    try {
      const a = hashed(bytes);
      await store.applyDiffChecked("a", undefined, a.stream, async () => {}, {
        tarSha256: a.digest,
      });
      assert.equal(a.calls(), 1);
      assert.ok(sameBytes(await exactOf("a"), bytes));
      // A digest that is not the tar's is not trusted: the rebuild refuses.
      await store.applyDiffChecked("b", undefined, bytes, async () => {}, {
        tarSha256: () => "0".repeat(64),
      });
      await assert.rejects(exactOf("b"), notExact(/record says sha256:0{64}/));
      // Compressed: the caller's hash is of other bytes, so it is not used.
      const gz = hashed(new Uint8Array(gzipSync(bytes)));
      await store.applyDiffChecked("c", undefined, gz.stream, async () => {}, {
        tarSha256: gz.digest,
      });
      assert.equal(gz.calls(), 0);
      assert.ok(sameBytes(await exactOf("c"), bytes));
    } finally {
      store.close();
    }
  },
});

privilegedTest(
  "tarsplit: an overlay view mounted on a recorded layer (the kernel marks its top dir) leaves it exact; a top-level file added is still found",
  async () => {
    await using tmp = await tempDir();
    const t = tmp.path;
    const bytes = await layerTar([
      { name: "d", type: "dir" },
      { name: "d/f", content: "f\n" },
    ]);
    const store = await openStore({ root: `${t}/s`, backend: "overlay" });
    try {
      await store.applyDiff("base", undefined, bytes);
      await store.applyDiff("child", "base", bytes);
      await new Promise((r) => setTimeout(r, 50)); // past the clock's tick
      // A read-only view with a parent: overlayfs writes trusted.overlay.uuid
      // on diff/child, which moves that dir's ctime.
      await store.get("child");
      await store.put("child");
      assert.ok(sameBytes(await exact(store, "child"), bytes));
      await Deno.writeTextFile(`${t}/s/diff/child/added`, "x");
      await assert.rejects(exact(store, "child"), notExact(/changed after/));
    } finally {
      await store.cleanup();
      store.close();
    }
  },
);

Deno.test("tarsplit: a directory the process may not read (0311) does not fail the exactness check", async () => {
  await using tmp = await tempDir();
  const t = tmp.path;
  // Made by our writer: GNU tar cannot read such a dir as a non-root user.
  const bytes = await layerTar([
    { name: "d", type: "dir", mode: 0o311 },
    { name: "d/f", content: "f\n" },
  ]);
  const store = await openStore({ root: `${t}/s`, backend: "vfs" });
  try {
    await store.applyDiff("l", undefined, bytes);
    assert.equal((await Deno.stat(`${t}/s/diff/l/d`)).mode! & 0o777, 0o311);
    assert.ok(sameBytes(await exact(store, "l"), bytes));
  } finally {
    await Deno.chmod(`${t}/s/diff/l/d`, 0o755).catch(() => {});
    store.close();
  }
});
