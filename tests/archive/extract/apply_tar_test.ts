import assert from "node:assert/strict";
import { applyTar } from "../../../src/archive/extract/apply_tar.ts";
import { InvalidArchive, LayerfsError } from "../../../src/errors.ts";
import { privilegedTest, tempDir } from "../../_privileged.ts";
import { statAt, tar, xattrs } from "./_tar.ts";

const S_IFMT = 0o170000;
const text = (p: string) => Deno.readTextFileSync(p);

privilegedTest(
  "applyTar: content, types, modes, owners, xattrs, ns mtimes, devices, fifos, hardlinks",
  async () => {
    await using d = await tempDir();
    const big = new Uint8Array(3 * 1024 * 1024 + 17).map((_, i) =>
      (i * 7) & 0xff
    );
    const size = await applyTar(
      d.path,
      tar([
        {
          name: "etc/",
          type: "dir",
          mode: 0o750,
          uid: 11,
          gid: 12,
          mtime: 1_500_000_000,
          mtimeNsec: 5,
        },
        {
          name: "etc/passwd",
          body: "root:x:0:0\n",
          mode: 0o644,
          mtime: 1_400_000_000,
          mtimeNsec: 123456789,
        },
        {
          name: "etc/suid",
          body: "#!/bin/sh\n",
          mode: 0o4755,
          uid: 1000,
          gid: 1000,
        },
        { name: "etc/sgid", body: "x", mode: 0o2711, uid: 7, gid: 8 },
        { name: "etc/empty", body: "", mode: 0o600 },
        { name: "etc/big", body: big, mode: 0o640 },
        {
          name: "etc/x",
          body: "x",
          xattrs: {
            "user.bin": new Uint8Array([0, 255, 10, 0x3d, 128]),
            "trusted.t": "v",
            "security.capability": new Uint8Array([
              1,
              0,
              0,
              2,
              0,
              0x20,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
              0,
            ]),
          },
        },
        { name: "etc/hard", type: "hardlink", linkname: "etc/passwd" },
        {
          name: "etc/sym",
          type: "symlink",
          linkname: "/etc/passwd",
          uid: 5,
          gid: 6,
          mtime: 1_300_000_000,
          mtimeNsec: 42,
          xattrs: { "trusted.l": "L" },
        },
        {
          name: "dev/null",
          type: "char",
          devmajor: 1,
          devminor: 3,
          mode: 0o666,
        },
        {
          name: "dev/sda",
          type: "block",
          devmajor: 8,
          devminor: 0,
          mode: 0o660,
          uid: 0,
          gid: 6,
        },
        {
          name: "dev/big",
          type: "char",
          devmajor: 4095,
          devminor: 1048575,
          mode: 0o600,
        },
        {
          name: "run/fifo",
          type: "fifo",
          mode: 0o620,
          mtime: 1_200_000_000,
          mtimeNsec: 999999999,
        },
        { name: "sticky/", type: "dir", mode: 0o1777 },
      ]),
    );
    const p = (s: string) => `${d.path}/${s}`;
    assert.equal(size, 11 + 10 + 1 + 0 + big.length + 1); // the hardlink counts once

    assert.equal(text(p("etc/passwd")), "root:x:0:0\n");
    assert.deepEqual(Deno.readFileSync(p("etc/big")), big);
    let st = statAt(p("etc/passwd"));
    assert.equal(st.mode, 0o100644);
    assert.equal(st.mtimeSec, 1_400_000_000);
    assert.equal(st.mtimeNsec, 123456789);
    assert.equal(st.nlink, 2);
    assert.equal(statAt(p("etc/hard")).ino, st.ino);
    st = statAt(p("etc/suid"));
    assert.deepEqual([st.mode, st.uid, st.gid], [0o104755, 1000, 1000]); // setuid survives chown
    st = statAt(p("etc/sgid"));
    assert.deepEqual([st.mode, st.uid, st.gid], [0o102711, 7, 8]);
    assert.equal(statAt(p("etc/empty")).size, 0);
    assert.equal(statAt(p("etc/empty")).mode, 0o100600);

    const xa = await xattrs(p("etc/x"));
    assert.equal(xa["user.bin"], "00ff0a3d80");
    assert.equal(xa["trusted.t"], "76");
    assert.ok(xa["security.capability"]?.startsWith("0100000200200000"));

    st = statAt(p("etc/sym"));
    assert.equal(st.mode & S_IFMT, 0o120000);
    assert.equal(Deno.readLinkSync(p("etc/sym")), "/etc/passwd");
    assert.deepEqual([st.uid, st.gid, st.mtimeSec, st.mtimeNsec], [
      5,
      6,
      1_300_000_000,
      42,
    ]);
    assert.equal((await xattrs(p("etc/sym")))["trusted.l"], "4c");

    st = statAt(p("dev/null"));
    assert.deepEqual([st.mode, st.rdevMajor, st.rdevMinor], [0o020666, 1, 3]);
    st = statAt(p("dev/sda"));
    assert.deepEqual([st.mode, st.rdevMajor, st.rdevMinor, st.gid], [
      0o060660,
      8,
      0,
      6,
    ]);
    st = statAt(p("dev/big"));
    assert.deepEqual([st.rdevMajor, st.rdevMinor], [4095, 1048575]);
    st = statAt(p("run/fifo"));
    assert.deepEqual([st.mode, st.mtimeSec, st.mtimeNsec], [
      0o010620,
      1_200_000_000,
      999999999,
    ]);

    // Directory metadata is applied after its contents were written.
    st = statAt(p("etc"));
    assert.deepEqual([st.mode, st.uid, st.gid, st.mtimeSec, st.mtimeNsec], [
      0o040750,
      11,
      12,
      1_500_000_000,
      5,
    ]);
    assert.equal(statAt(p("sticky")).mode, 0o041777);
    // Implicit parents get 0755.
    assert.equal(statAt(p("dev")).mode & 0o777, 0o755);
  },
);

privilegedTest(
  "applyTar: a read-only directory still receives its later entries",
  async () => {
    await using d = await tempDir();
    await applyTar(
      d.path,
      tar([
        { name: "ro/", type: "dir", mode: 0o500, mtime: 1_000_000_000 },
        { name: "ro/sub/", type: "dir", mode: 0o000, mtime: 1_000_000_001 },
        { name: "ro/sub/f", body: "deep" },
        { name: "ro/g", body: "g" },
      ]),
    );
    assert.equal(text(`${d.path}/ro/sub/f`), "deep");
    assert.equal(statAt(`${d.path}/ro`).mode, 0o040500);
    assert.equal(statAt(`${d.path}/ro`).mtimeSec, 1_000_000_000);
    assert.equal(statAt(`${d.path}/ro/sub`).mode, 0o040000);
    assert.equal(statAt(`${d.path}/ro/sub`).mtimeSec, 1_000_000_001);
  },
);

privilegedTest("applyTar: last entry wins, no link followed", async () => {
  await using d = await tempDir();
  const p = (s: string) => `${d.path}/${s}`;
  Deno.mkdirSync(p("keep"));
  Deno.writeFileSync(p("keep/old"), new Uint8Array(5));
  const size = await applyTar(
    d.path,
    tar([
      { name: "a", body: "file first" },
      { name: "a/", type: "dir", mode: 0o711 }, // dir replaces file
      { name: "a/inner", body: "in" },
      { name: "b/", type: "dir" },
      { name: "b/c/d", body: "deep" },
      { name: "b", body: "file replaces dir tree" }, // file replaces a whole tree
      { name: "c", type: "symlink", linkname: "b" },
      { name: "c", body: "file replaces symlink" },
      { name: "e", body: "to be a symlink" },
      { name: "e", type: "symlink", linkname: "a" },
      { name: "f", body: "once" },
      { name: "f", body: "twice!" },
      { name: "keep/", type: "dir", mode: 0o700 }, // merges into the existing dir
      { name: "keep/new", body: "n" },
    ]),
  );
  assert.equal(statAt(p("a")).mode, 0o040711);
  assert.equal(text(p("a/inner")), "in");
  assert.equal(text(p("b")), "file replaces dir tree");
  assert.equal(statAt(p("c")).mode & S_IFMT, 0o100000);
  assert.equal(Deno.readLinkSync(p("e")), "a");
  assert.equal(text(p("f")), "twice!");
  assert.equal(statAt(p("keep/old")).size, 5);
  assert.equal(text(p("keep/new")), "n");
  // Replaced bytes no longer count: in, b, c, f (6), keep/new.
  assert.equal(size, 2 + 22 + 21 + 6 + 1);
});

privilegedTest(
  "applyTar: hardlinks must point to earlier entries of the same tar",
  async () => {
    await using d = await tempDir();
    Deno.writeTextFileSync(`${d.path}/preexisting`, "x");
    await assert.rejects(
      applyTar(
        d.path,
        tar([{ name: "l", type: "hardlink", linkname: "preexisting" }]),
      ),
      (e: unknown) =>
        e instanceof InvalidArchive && e.entry === "l" &&
        /earlier file/.test(e.message),
    );
    await assert.rejects(
      applyTar(
        d.path,
        tar([{ name: "dir/", type: "dir" }, {
          name: "l",
          type: "hardlink",
          linkname: "dir",
        }]),
      ),
      InvalidArchive,
    );
    // A target removed by a later entry cannot be linked anymore.
    await assert.rejects(
      applyTar(
        d.path,
        tar([
          { name: "t", body: "1" },
          { name: "t/", type: "dir" },
          { name: "l", type: "hardlink", linkname: "t" },
        ]),
      ),
      InvalidArchive,
    );
    // Link to a symlink links the symlink itself; the link replaces an existing file.
    await applyTar(
      d.path,
      tar([
        { name: "s", type: "symlink", linkname: "preexisting" },
        { name: "x", body: "to be replaced" },
        { name: "x", type: "hardlink", linkname: "./s" },
      ]),
    );
    assert.equal(statAt(`${d.path}/x`).mode & S_IFMT, 0o120000);
    assert.equal(statAt(`${d.path}/x`).ino, statAt(`${d.path}/s`).ino);
  },
);

privilegedTest(
  "applyTar: truncated and corrupt archives fail with InvalidArchive naming the entry",
  async () => {
    await using d = await tempDir();
    const good = tar([{ name: "a", body: "x".repeat(2000) }, {
      name: "b",
      body: "y",
    }]);
    await assert.rejects(
      applyTar(d.path, good.slice(0, 1200)),
      (e: unknown) =>
        e instanceof InvalidArchive && e.entry === "a" &&
        /truncated/.test(e.message),
    );
    const bad = good.slice();
    bad[512 * 5 + 10] ^= 0xff; // header of "b": checksum no longer matches
    await assert.rejects(applyTar(d.path, bad), InvalidArchive);
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(good.slice(0, 700));
        c.close();
      },
    });
    await assert.rejects(applyTar(d.path, stream), InvalidArchive);
  },
);

privilegedTest(
  "applyTar: a file whose body is cut short is removed; the entries before it stay",
  async () => {
    const whole = tar([
      { name: "before", body: "b" },
      { name: "cut", body: "x".repeat(5000) },
    ]);
    const cut = whole.slice(0, 1024 + 512 + 3000); // inside cut's body
    const inputs = {
      bytes: () => cut, // the body is buffered: written at once
      stream: () =>
        // the body arrives later: written as it comes
        new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(cut.slice(0, 1024 + 512 + 100));
            c.enqueue(cut.slice(1024 + 512 + 100));
            c.close();
          },
        }),
    };
    for (const [how, input] of Object.entries(inputs)) {
      await using d = await tempDir();
      await assert.rejects(
        applyTar(d.path, input()),
        (e: unknown) =>
          e instanceof InvalidArchive && e.entry === "cut" &&
          /truncated/.test(e.message),
        how,
      );
      assert.deepEqual(
        (await Array.fromAsync(Deno.readDir(d.path))).map((e) => e.name),
        ["before"],
        how,
      );
      assert.equal(await Deno.readTextFile(`${d.path}/before`), "b");
    }
  },
);

privilegedTest(
  "applyTar: missing target directory is a clear error",
  async () => {
    await using d = await tempDir();
    await assert.rejects(
      applyTar(`${d.path}/nope`, tar([])),
      (e: unknown) =>
        e instanceof LayerfsError && /existing directory/.test(e.message),
    );
  },
);

privilegedTest(
  "applyTar: GNU tar archives extract identically (tar --compare)",
  async () => {
    await using d = await tempDir();
    const src = `${d.path}/src`;
    const out = `${d.path}/out`;
    const sh = `
    set -e
    mkdir -p ${src}/a/b/c ${out}
    printf 'hello' > ${src}/a/f; chmod 4755 ${src}/a/f; chown 1234:99 ${src}/a/f
    head -c 200000 /dev/urandom > ${src}/a/b/rand
    ln ${src}/a/f ${src}/a/b/hl
    ln -s ../f ${src}/a/b/sl
    mkfifo ${src}/a/fifo
    mknod ${src}/a/null c 1 3
    setfattr -n user.bin -v 0x00ff00 ${src}/a/b/rand
    setfattr -n trusted.x -v 0x01 ${src}/a/b
    touch -h -d '2001-02-03 04:05:06.789123456' ${src}/a/b/sl ${src}/a/b/rand
    chmod 0700 ${src}/a/b/c
    long=${src}/a/$(printf 'n%.0s' $(seq 1 150)); echo long > $long
    cd ${src} && tar --xattrs --xattrs-include='*' --format=pax -cf ${d.path}/t.tar .
  `;
    const r = await new Deno.Command("sh", { args: ["-c", sh] }).output();
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    using f = await Deno.open(`${d.path}/t.tar`);
    await applyTar(out, f);
    const cmp = await new Deno.Command("tar", {
      args: [
        "--xattrs",
        "--xattrs-include=*",
        "-df",
        `${d.path}/t.tar`,
        "-C",
        out,
      ],
    }).output();
    assert.equal(
      cmp.code,
      0,
      new TextDecoder().decode(cmp.stdout) +
        new TextDecoder().decode(cmp.stderr),
    );
    assert.equal(statAt(`${out}/a/b/sl`).mtimeNsec, 789123456);
    assert.equal((await xattrs(`${out}/a/b/rand`))["user.bin"], "00ff00");
  },
);

privilegedTest(
  "applyTar: overlay xattrs from the tar are dropped",
  async () => {
    await using d = await tempDir();
    await applyTar(
      d.path,
      tar([
        {
          name: "d/",
          type: "dir",
          xattrs: { "trusted.overlay.redirect": "/etc", "user.ok": "1" },
        },
        {
          name: "f",
          body: "",
          xattrs: {
            "trusted.overlay.metacopy": "",
            "user.overlay.origin": "x",
          },
        },
      ]),
      { format: "overlay" },
    );
    assert.deepEqual(await xattrs(`${d.path}/d`), { "user.ok": "31" });
    assert.deepEqual(await xattrs(`${d.path}/f`), {});
  },
);

privilegedTest(
  "applyTar: root entry sets the target's own metadata; reports progress",
  async () => {
    await using d = await tempDir();
    Deno.mkdirSync(`${d.path}/t`);
    const seen: number[] = [];
    const entries = Array.from(
      { length: 1500 },
      (_, i) => ({ name: `./f${i}`, body: "" }),
    );
    await applyTar(
      `${d.path}/t`,
      tar([{ name: "./", type: "dir", mode: 0o751, mtime: 1234 }, ...entries]),
      {
        onProgress: (p) => seen.push(p.entries),
      },
    );
    assert.equal(statAt(`${d.path}/t`).mode, 0o040751);
    assert.equal(statAt(`${d.path}/t`).mtimeSec, 1234);
    assert.deepEqual(seen, [1024, 1501]);
    await assert.rejects(
      applyTar(`${d.path}/t`, tar([{ name: "/", body: "x" }])),
      InvalidArchive,
    );
  },
);

privilegedTest(
  "applyTar: an empty target and a non-empty one give the same answers about this tar's own entries",
  async () => {
    // An empty root skips recording each file's inode (every non-directory
    // below it is the tar's, but the whiteout devices); a root that held
    // something records them. Each case must come out the same in both.
    const cases: { name: string; entries: Parameters<typeof tar>[0] }[] = [
      {
        name: "a whiteout is no hardlink target",
        entries: [
          { name: "a/", type: "dir" },
          { name: "a/.wh.x", body: "" },
          { name: "l", type: "hardlink", linkname: "a/x" },
        ],
      },
      {
        name: "a file that replaced a whiteout is",
        entries: [
          { name: "a/", type: "dir" },
          { name: "a/.wh.x", body: "" },
          { name: "a/x", body: "new" },
          { name: "l", type: "hardlink", linkname: "a/x" },
        ],
      },
      {
        name: "a removed target is not",
        entries: [
          { name: "t", body: "1" },
          { name: "t/", type: "dir" },
          { name: "l", type: "hardlink", linkname: "t" },
        ],
      },
      {
        name: "overwrites and links count once",
        entries: [
          { name: "f", body: "12345" },
          { name: "f", body: "12" },
          { name: "g", type: "hardlink", linkname: "f" },
          { name: "d/", type: "dir" },
          { name: "d/h", body: "abc" },
          { name: "d/s", type: "symlink", linkname: "h" },
          { name: "d/.wh..wh..opq", body: "" },
          { name: "k", body: "xyz" },
          { name: "k/", type: "dir" },
        ],
      },
    ];
    const expected: {
      size?: number;
      linked?: boolean;
      refused?: boolean;
      error?: string;
    }[] = [];
    for (const { name, entries } of cases) {
      const outcome = async (prefill: boolean) => {
        await using d = await tempDir();
        if (prefill) Deno.writeTextFileSync(`${d.path}/zz-unrelated`, "x");
        try {
          const size = await applyTar(d.path, tar(entries), {
            format: "overlay",
          });
          const names = [...Deno.readDirSync(d.path)].map((e) => e.name)
            .filter((n) => n !== "zz-unrelated").sort();
          const linked = names.includes("l") &&
            statAt(`${d.path}/l`).ino === statAt(`${d.path}/a/x`).ino;
          return { size, names, linked };
        } catch (e) {
          const refused = e instanceof InvalidArchive;
          return { refused, error: `${(e as Error).message}` };
        }
      };
      const [empty, filled] = [await outcome(false), await outcome(true)];
      assert.deepEqual(empty, filled, name);
      expected.push(empty);
    }
    // And what they are: the first and third cases are refused, the second
    // links the new file, the fourth counts f (2), d/h (3) and nothing of k.
    const [wh, replaced, removed, counted] = expected;
    assert.ok(wh.refused && /earlier file/.test(wh.error!), wh.error);
    assert.equal(replaced.linked, true);
    assert.ok(removed.refused, removed.error);
    assert.equal(counted.size, 2 + 3);
  },
);
