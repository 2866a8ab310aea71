/**
 * The system call layer (src/sys/libc_linux.ts): every call goes through a
 * few `syscall(2)` shapes with the kernel's numbers for this architecture.
 * These tests check the numbers against the kernel headers, how many shapes
 * an apply and a pack bind (each costs its process ~0.3 ms), and the
 * arguments whose encoding the shapes change (uids above 2^31, device
 * numbers, NULL paths).
 */
import assert from "node:assert/strict";
import { libc, SYSCALL_NUMBERS } from "../../src/sys/libc_linux.ts";
import { AT_FDCWD, close, O, openat } from "../../src/sys/fd_linux.ts";
import { makedev, mknodat, S } from "../../src/sys/fs_at_linux.ts";
import { isRoot, privilegedTest, tempDir } from "../_privileged.ts";

/** `#define __NR_<name> <n>` (and the generic table's `__NR3264_<name>`) of a header. */
function headerNumbers(path: string): Map<string, number> | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch {
    return null;
  }
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^#define __NR(?:3264)?_(\w+)\s+(\d+)\s*$/gm)) {
    out.set(m[1], Number(m[2]));
  }
  return out;
}

const HEADERS = [
  ["x86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h", 0],
  ["aarch64", "/usr/include/asm-generic/unistd.h", 1],
] as const;

for (const [arch, path, col] of HEADERS) {
  const nums = headerNumbers(path);
  Deno.test({
    name: `syscall numbers: the ${arch} column equals the kernel's ${path}`,
    ignore: nums === null,
    fn() {
      const absent: string[] = [];
      let compared = 0;
      for (const [name, pair] of Object.entries(SYSCALL_NUMBERS)) {
        const n = nums!.get(name);
        if (n === undefined) {
          absent.push(name);
          continue;
        }
        assert.equal(pair[col], n, `${arch} ${name}`);
        compared++;
      }
      // Headers older than the newest calls lack only those (unified numbers).
      for (const name of absent) {
        const [x, a] = SYSCALL_NUMBERS[name as keyof typeof SYSCALL_NUMBERS];
        assert.ok(x >= 424 && x === a, `${name} is missing from ${path}`);
      }
      assert.ok(compared >= 40, `only ${compared} calls compared`);
    },
  });
  if (nums === null) {
    console.warn(`skipping the ${arch} syscall numbers: no ${path}`);
  }
}

Deno.test("syscall numbers: from 424 on, one number on every architecture", () => {
  for (const [name, [x, a]] of Object.entries(SYSCALL_NUMBERS)) {
    if (x >= 424 || a >= 424) assert.equal(x, a, name);
  }
});

/** Runs `code` (a module importing mod.ts) in a fresh process; returns its stdout. */
async function fresh(code: string): Promise<string> {
  const mod = new URL("../../mod.ts", import.meta.url).href;
  const libcUrl = new URL("../../src/sys/libc_linux.ts", import.meta.url).href;
  const src = `import { applyTar, packDir, writeToFile } from ${
    JSON.stringify(mod)
  };\nimport { boundShapes } from ${JSON.stringify(libcUrl)};\n${code}`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = out.stdin.getWriter();
  await w.write(new TextEncoder().encode(src));
  await w.close();
  const r = await out.output();
  assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout);
}

Deno.test("syscall shapes: packing and applying a layer bind at most 7 and 8 call shapes in a fresh process", async () => {
  await using d = await tempDir();
  await Deno.mkdir(`${d.path}/src/sub`, { recursive: true });
  await Deno.writeTextFile(`${d.path}/src/sub/f`, "hello");
  await Deno.symlink("sub/f", `${d.path}/src/l`);
  await Deno.link(`${d.path}/src/sub/f`, `${d.path}/src/h`);
  await Deno.mkdir(`${d.path}/dst`);
  const out = await fresh(`
    {
      using o = await Deno.open(${
    JSON.stringify(`${d.path}/l.tar`)
  }, { create: true, write: true });
      await writeToFile(packDir(${JSON.stringify(`${d.path}/src`)}), o);
    }
    const pack = boundShapes();
    {
      using f = await Deno.open(${JSON.stringify(`${d.path}/l.tar`)});
      await applyTar(${JSON.stringify(`${d.path}/dst`)}, f);
    }
    console.log(JSON.stringify({ pack, all: boundShapes() }));
  `);
  const { pack, all } = JSON.parse(out) as { pack: string[]; all: string[] };
  assert.equal(await Deno.readTextFile(`${d.path}/dst/sub/f`), "hello");
  assert.equal(await Deno.readLink(`${d.path}/dst/l`), "sub/f");
  assert.ok(pack.length > 0 && pack.length <= 7, `pack bound ${pack}`);
  assert.ok(all.length <= 8, `pack and apply bound ${all}`);
});

Deno.test("syscall shapes: a device number above 32 bits is refused with EINVAL, as glibc refuses it", async () => {
  await using d = await tempDir();
  const dirfd = openat(AT_FDCWD, d.path, O.PATH | O.DIRECTORY);
  try {
    assert.throws(
      () => mknodat(dirfd, "dev", S.IFCHR | 0o600, makedev(0x1000, 1)),
      /mknodat.*EINVAL/,
    );
    assert.throws(() => Deno.lstatSync(`${d.path}/dev`), Deno.errors.NotFound);
  } finally {
    close(dirfd);
  }
});

Deno.test("syscall shapes: futimens (a NULL path) sets the fd's own times", async () => {
  await using d = await tempDir();
  await Deno.writeTextFile(`${d.path}/f`, "x");
  const fd = openat(AT_FDCWD, `${d.path}/f`, O.RDONLY);
  try {
    // struct timespec[2]: atime 1000.5 s, mtime 2000.25 s
    const t = new BigInt64Array([1000n, 500_000_000n, 2000n, 250_000_000n]);
    assert.equal(libc().futimens(fd, new Uint8Array(t.buffer)), 0);
  } finally {
    close(fd);
  }
  const st = Deno.statSync(`${d.path}/f`);
  assert.equal(st.mtime?.getTime(), 2_000_250);
  assert.equal(st.atime?.getTime(), 1_000_500);
});

privilegedTest(
  "syscall shapes: uids and gids above 2^31 reach the kernel whole (fchown, fchownat)",
  async () => {
    await using d = await tempDir();
    await Deno.writeTextFile(`${d.path}/f`, "x");
    await Deno.symlink("f", `${d.path}/l`);
    const big = 3_000_000_000;
    const fd = openat(AT_FDCWD, `${d.path}/f`, O.RDONLY);
    const dirfd = openat(AT_FDCWD, d.path, O.PATH | O.DIRECTORY);
    try {
      assert.equal(libc().fchown(fd, big, big + 1), 0);
      const link = new TextEncoder().encode("l\0");
      assert.equal(libc().fchownat(dirfd, link, big + 2, big + 3, 0x100), 0);
    } finally {
      close(fd);
      close(dirfd);
    }
    const f = Deno.statSync(`${d.path}/f`);
    assert.deepEqual([f.uid, f.gid], [big, big + 1]);
    const l = Deno.lstatSync(`${d.path}/l`);
    assert.deepEqual([l.uid, l.gid], [big + 2, big + 3]);
    assert.ok(isRoot);
  },
);
