import assert from "node:assert/strict";
import { AT, AT_FDCWD, close, O, openat } from "../../../src/sys/fd_linux.ts";
import {
  emptyDirAt,
  fchmodatNoFollow,
  lsetxattrAt,
  makedev,
  removeAllAt,
  S,
  utimensat,
} from "../../../src/sys/fs_at_linux.ts";
import {
  getXattrAt,
  readXattrsAt,
  statxAtOrNull,
  useXattrAtCalls,
} from "../../../src/sys/fs_walk_linux.ts";
import { SysError } from "../../../src/sys/libc_linux.ts";
import { privilegedTest, tempDir } from "../../_privileged.ts";
import { xattrs } from "./_tar.ts";

Deno.test("makedev encodes like glibc", () => {
  assert.equal(makedev(1, 3), 0x103n);
  assert.equal(makedev(8, 0), 0x800n);
  assert.equal(makedev(4095, 1048575), 0xfffff_fffn | (0n << 32n));
  assert.equal(makedev(0x1000, 0x100), (0x1000n << 32n) | (0x100n << 12n));
});

Deno.test("statxAtOrNull: no-follow, ns times, null when missing", async () => {
  await using d = await tempDir();
  Deno.writeTextFileSync(`${d.path}/f`, "abc");
  Deno.symlinkSync("f", `${d.path}/l`);
  const fd = openat(AT_FDCWD, d.path, O.PATH | O.DIRECTORY);
  try {
    assert.equal(statxAtOrNull(fd, "missing"), null);
    assert.equal(statxAtOrNull(fd, "l")!.mode & S.IFMT, S.IFLNK);
    assert.equal(statxAtOrNull(fd, "l")!.kind, "symlink");
    assert.equal(statxAtOrNull(fd, "f")!.mode, S.IFREG | 0o644);
    assert.equal(statxAtOrNull(fd, "f/x"), null); // ENOTDIR
    assert.equal(statxAtOrNull(fd, "f")!.dev, statxAtOrNull(fd, "l")!.dev);
    assert.equal(statxAtOrNull(fd, "f")!.size, 3);
    // Negative and above-2^32 seconds (both words of the timespec).
    for (const sec of [-2_000_000_000, 5_000_000_000]) {
      utimensat(fd, "l", -5, 1, sec, 999_999_999, AT.SYMLINK_NOFOLLOW);
      const st = statxAtOrNull(fd, "l")!;
      assert.deepEqual([st.mtimeSec, st.mtimeNsec], [sec, 999_999_999]);
      assert.notEqual(statxAtOrNull(fd, "f")!.mtimeSec, sec);
    }
    assert.throws(() => fchmodatNoFollow(fd, "l", 0o600), SysError);
  } finally {
    close(fd);
  }
});

Deno.test("removeAllAt/emptyDirAt never follow symlinks out", async () => {
  await using d = await tempDir();
  Deno.mkdirSync(`${d.path}/outside`);
  Deno.writeTextFileSync(`${d.path}/outside/keep`, "k");
  Deno.mkdirSync(`${d.path}/root/a/b`, { recursive: true });
  Deno.writeTextFileSync(`${d.path}/root/a/b/f`, "f");
  Deno.symlinkSync(`${d.path}/outside`, `${d.path}/root/a/link`);
  Deno.mkdirSync(`${d.path}/root/e/x`, { recursive: true });
  Deno.writeTextFileSync(`${d.path}/root/e/y`, "y");
  const fd = openat(AT_FDCWD, `${d.path}/root`, O.PATH | O.DIRECTORY);
  try {
    assert.equal(removeAllAt(fd, "a"), true);
    assert.equal(removeAllAt(fd, "a"), false);
    emptyDirAt(fd, "e", (n) => n[0] === 0x79); // keeps "y"
    assert.deepEqual(
      [...Deno.readDirSync(`${d.path}/root/e`)].map((e) => e.name),
      ["y"],
    );
    // emptyDirAt on a symlink is refused (O_NOFOLLOW).
    Deno.symlinkSync(`${d.path}/outside`, `${d.path}/root/s`);
    assert.throws(() => emptyDirAt(fd, "s"), SysError);
  } finally {
    close(fd);
  }
  assert.equal(Deno.readTextFileSync(`${d.path}/outside/keep`), "k");
});

privilegedTest(
  "lsetxattrAt sets the attribute on a symlink itself",
  async () => {
    await using d = await tempDir();
    Deno.writeTextFileSync(`${d.path}/t`, "t");
    Deno.symlinkSync("t", `${d.path}/l`);
    const fd = openat(AT_FDCWD, d.path, O.PATH | O.DIRECTORY);
    try {
      lsetxattrAt(fd, "l", "trusted.k", new Uint8Array([0, 1, 255]));
      assert.throws(
        () => lsetxattrAt(fd, "../x", "trusted.k", new Uint8Array()),
        SysError,
      );
    } finally {
      close(fd);
    }
    assert.equal((await xattrs(`${d.path}/l`))["trusted.k"], "0001ff");
    assert.equal((await xattrs(`${d.path}/t`))["trusted.k"], undefined);
  },
);

privilegedTest(
  "readXattrsAt, getXattrAt: the *xattrat calls and the /proc path read the same xattrs getfattr set, never following a symlink",
  async () => {
    await using d = await tempDir();
    const big = "v".repeat(4000);
    Deno.writeTextFileSync(`${d.path}/f`, "x");
    Deno.mkdirSync(`${d.path}/dir`);
    Deno.symlinkSync("f", `${d.path}/l`);
    Deno.writeTextFileSync(`${d.path}/plain`, "");
    const set = (args: string[]) => {
      const r = new Deno.Command("setfattr", { args }).outputSync();
      assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    };
    set(["-n", "user.a", "-v", "0x00ff10", `${d.path}/f`]);
    set(["-n", "user.big", "-v", big, `${d.path}/f`]);
    set(["-n", "trusted.t", "-v", "dir", `${d.path}/dir`]);
    set(["-h", "-n", "trusted.sym", "-v", "own", `${d.path}/l`]);
    const want = new Map<string, Map<string, Uint8Array>>([
      [
        "f",
        new Map([["user.a", new Uint8Array([0, 255, 16])], [
          "user.big",
          new TextEncoder().encode(big),
        ]]),
      ],
      ["dir", new Map([["trusted.t", new TextEncoder().encode("dir")]])],
      // The link's own xattr, not its target's.
      ["l", new Map([["trusted.sym", new TextEncoder().encode("own")]])],
      ["plain", new Map()],
    ]);
    const fd = openat(AT_FDCWD, d.path, O.PATH | O.DIRECTORY);
    try {
      for (const via of [undefined, false] as const) {
        useXattrAtCalls(via);
        for (const [name, xs] of want) {
          const got = readXattrsAt(fd, name);
          assert.deepEqual(
            new Map([...got].sort(([a], [b]) => a < b ? -1 : 1)),
            xs,
            `${name} (${via === false ? "/proc path" : "xattrat calls"})`,
          );
        }
        assert.deepEqual(
          getXattrAt(fd, "l", "trusted.sym"),
          new TextEncoder().encode("own"),
        );
        assert.equal(getXattrAt(fd, "dir", "user.none"), null);
        assert.throws(
          () => readXattrsAt(fd, "missing"),
          (e: unknown) => e instanceof SysError && e.code === "ENOENT",
        );
      }
    } finally {
      useXattrAtCalls(undefined);
      close(fd);
    }
  },
);
