/**
 * The `layerfs` CLI as a subprocess (`deno run -A src/cli/main.ts`): every
 * command on overlay (root) and vfs, usage errors, one-line errors, --json,
 * gzip/zstd input, diff -o/--compress, check and --repair.
 */
import assert from "node:assert/strict";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { shortLinkName } from "../../src/backends/overlay.ts";

import { layerfs, MAIN, type Run, sh } from "./_layerfs.ts";

/** A tar with etc/hosts and a dir; plus gzip and zstd copies. */
async function makeTars(dir: string): Promise<void> {
  await Deno.mkdir(`${dir}/src/etc`, { recursive: true });
  await Deno.writeTextFile(`${dir}/src/etc/hosts`, "127.0.0.1 localhost\n");
  await Deno.mkdir(`${dir}/child/etc`, { recursive: true });
  await Deno.writeTextFile(`${dir}/child/etc/motd`, "hello\n");
  await Deno.writeTextFile(`${dir}/child/etc/.wh.hosts`, "");
  await sh(
    "tar -C src -cf base.tar . && gzip -kf base.tar && zstd -qf base.tar && tar -C child -cf child.tar .",
    dir,
  );
}

function noStack(r: Run): void {
  assert.doesNotMatch(
    r.stderr,
    /\n\s+at /,
    `stack trace in stderr: ${r.stderr}`,
  );
}

/** Runs every command against a store with `backend`. */
async function everyCommand(backend: "overlay" | "vfs"): Promise<void> {
  await using tmp = await tempDir();
  const d = tmp.path;
  await makeTars(d);
  const g = ["--root", `${d}/store`, "--backend", backend];
  const ok = async (args: string[], opts?: Parameters<typeof layerfs>[1]) => {
    const r = await layerfs([...g, ...args], opts);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(
      r.stderr,
      "",
      "no progress or noise when stderr is not a terminal",
    );
    return r;
  };

  // A read command on a root with no store is an error, not an init.
  const none = await layerfs([...g, "ls"]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^layerfs: No layerfs store at .*init/);
  assert.equal(none.stderr.trim().split("\n").length, 1);

  await ok(["init"]);
  const status = JSON.parse((await ok(["--json", "status"])).stdout);
  assert.equal(status.backend, backend);

  // apply: plain file, gzip file, zstd from stdin; prints the size.
  const plain = await ok(["apply", "base", `${d}/base.tar`]);
  assert.equal(plain.stdout.trim(), "20");
  const gz = JSON.parse(
    (await ok(["--json", "apply", "base-gz", `${d}/base.tar.gz`])).stdout,
  );
  assert.deepEqual(gz, {
    id: "base-gz",
    parent: null,
    size: 20,
    compression: "gzip",
  });
  const zst = await ok(["--json", "apply", "base-zst", "-"], {
    stdin: await Deno.readFile(`${d}/base.tar.zst`),
  });
  assert.equal(JSON.parse(zst.stdout).compression, "zstd");
  await ok(["apply", "child", "--parent", "base", `${d}/child.tar`]);

  // create / exists / ls
  await ok(["create", "ctr", "--parent", "child", "--rw"]);
  assert.equal((await layerfs([...g, "exists", "ctr"])).code, 0);
  const missing = await layerfs([...g, "--json", "exists", "nope"]);
  assert.equal(missing.code, 1);
  assert.deepEqual(JSON.parse(missing.stdout), { id: "nope", exists: false });
  const ls = JSON.parse((await ok(["--json", "ls"])).stdout).layers;
  assert.deepEqual(ls.map((l: { id: string }) => l.id), [
    "base",
    "base-gz",
    "base-zst",
    "child",
    "ctr",
  ]);
  assert.equal(ls.find((l: { id: string }) => l.id === "ctr").readWrite, true);
  assert.match(
    (await ok(["ls"])).stdout,
    /^ID\s+PARENT\s+KIND\s+MOUNTS\nbase\s+-\s+ro\s+0\n/,
  );

  // mount shows the union: motd added, hosts deleted by the whiteout.
  const path = (await ok(["mount", "ctr"])).stdout.trim();
  assert.equal(await Deno.readTextFile(`${path}/etc/motd`), "hello\n");
  await assert.rejects(Deno.stat(`${path}/etc/hosts`), Deno.errors.NotFound);
  await Deno.writeTextFile(`${path}/etc/new`, "x\n");
  const mounted = JSON.parse((await ok(["--json", "ls"])).stdout).layers;
  assert.equal(mounted.find((l: { id: string }) => l.id === "ctr").mounts, 1);

  // rm of a mounted layer is refused with one line; --force works later.
  const busy = await layerfs([...g, "rm", "ctr"]);
  assert.equal(busy.code, 1);
  assert.match(
    busy.stderr,
    /^layerfs: Cannot remove layer "ctr": it is mounted/,
  );
  noStack(busy);

  // changes, size
  assert.equal((await ok(["changes", "ctr"])).stdout, "C /etc\nA /etc/new\n");
  const ch = JSON.parse((await ok(["--json", "changes", "child"])).stdout);
  assert.equal(ch.id, "child");
  assert.equal(ch.parent, "base"); // its direct parent, when --parent is not given
  assert.deepEqual(
    ch.changes.map((c: { path: string; kind: string }) =>
      `${c.kind} ${c.path}`
    ),
    [
      "modify /etc",
      "delete /etc/hosts",
      "add /etc/motd",
    ],
  );
  assert.equal((await ok(["size", "child"])).stdout, "6\n");

  // diff: stdout, -o, --compress gzip|zstd; all list the same names.
  const names = async (tarCmd: string) =>
    new TextDecoder().decode(await sh(tarCmd, d)).split("\n").sort().join(",");
  const toStdout = await ok(["diff", "child"]);
  await Deno.writeFile(`${d}/out.tar`, toStdout.bytes);
  const want = await names("tar -tf out.tar");
  assert.match(want, /etc\/\.wh\.hosts/);
  assert.match(want, /etc\/motd/);
  const o = JSON.parse(
    (await ok(["--json", "diff", "child", "-o", `${d}/o.tar`])).stdout,
  );
  assert.equal(o.bytes, (await Deno.stat(`${d}/o.tar`)).size);
  // -o writes through its own reused buffer: the same bytes as stdout.
  assert.deepEqual(await Deno.readFile(`${d}/o.tar`), toStdout.bytes);
  assert.equal(await names("tar -tf o.tar"), want);
  await ok(["diff", "child", "-o", `${d}/o.tar.gz`, "--compress", "gzip"]);
  assert.equal(await names("tar -tzf o.tar.gz"), want);
  await ok(["diff", "child", "-o", `${d}/o.tar.zst`, "--compress", "zstd"]);
  assert.equal(await names("zstd -dc o.tar.zst | tar -tf -"), want);
  // and our own apply reads our compressed output back
  await ok(["apply", "again", "--parent", "base", `${d}/o.tar.zst`]);
  assert.equal(
    (await ok(["changes", "again"])).stdout,
    (await ok(["changes", "child"])).stdout,
  );

  // umount, cleanup, check, rm
  assert.equal((await ok(["--quiet", "umount", "ctr"])).stdout, "");
  assert.equal(
    JSON.parse((await ok(["--json", "check"])).stdout).problems.length,
    0,
  );
  await ok(["cleanup"]);
  await ok(["rm", "ctr"]);
  assert.equal((await layerfs([...g, "exists", "ctr"])).code, 1);
  const parent = await layerfs([...g, "rm", "base"]);
  assert.equal(parent.code, 1);
  assert.match(parent.stderr, /parent of/);
  await ok(["rm", "--force", "base"]);
}

privilegedTest("cli: every command on overlay", () => everyCommand("overlay"));
Deno.test("cli: every command on vfs", () => everyCommand("vfs"));

Deno.test("cli: usage errors exit 2 with the command's help, no stack trace", async () => {
  await using tmp = await tempDir();
  const g = ["--root", `${tmp.path}/s`, "--backend", "vfs"];
  const cases: [string[], RegExp, RegExp][] = [
    [["bogus"], /Unknown command "bogus"/, /Commands:/],
    [[], /Missing command/, /Commands:/],
    [
      ["create"],
      /Missing argument: ID/,
      /Usage: layerfs \[global options\] create ID/,
    ],
    [["create", "a", "b"], /Unexpected argument "b"/, /create ID/],
    [["rm", "a", "--bogus"], /Unknown option --bogus/, /Usage: .* rm ID/],
    [["diff", "a", "--compress"], /Option --compress needs a value/, /diff ID/],
    [["--backend", "zfs", "ls"], /Unknown backend "zfs"/, /ls/],
    // A single-value option given twice is refused, not overridden.
    [
      ["load", "x.tar", "--tag", "a:1", "--tag", "b:2"],
      /Option --tag given twice \("a:1", "b:2"\); it takes one value$/,
      /Usage: .* load /,
    ],
    [["ls", "--root", "/elsewhere"], /Option --root given twice/, /ls/],
    [
      ["diff", "a", "-o", "x", "--output=y"],
      /Option --output given twice/,
      /diff ID/,
    ],
  ];
  for (const [args, msg, help] of cases) {
    // Only --root: a case may give --backend itself.
    const r = await layerfs([...g.slice(0, 2), ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(
      r.stderr.split("\n")[0],
      new RegExp("^layerfs: " + msg.source),
    );
    assert.match(r.stderr, help);
    noStack(r);
  }
  // --compress with a bad kind, and diff --json without -o, are usage errors too.
  await layerfs([...g, "init"]);
  await layerfs([...g, "create", "x"]);
  const bad = await layerfs([
    ...g,
    "diff",
    "x",
    "-o",
    `${tmp.path}/t`,
    "--compress",
    "xz",
  ]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Unknown compression "xz"/);
  const js = await layerfs([...g, "--json", "diff", "x"]);
  assert.equal(js.code, 2);
  assert.equal(JSON.parse(js.stdout).error.exitCode, 2);
});

Deno.test("cli: --help for every command and the whole CLI", async () => {
  for (
    const c of [
      "init",
      "status",
      "create",
      "rm",
      "exists",
      "ls",
      "mount",
      "umount",
      "apply",
      "diff",
      "changes",
      "size",
      "cleanup",
      "check",
      "helper",
    ]
  ) {
    const r = await layerfs([c, "--help"]);
    assert.equal(r.code, 0);
    assert.match(
      r.stdout,
      new RegExp(`^Usage: layerfs \\[global options\\] ${c}`),
    );
  }
  const all = await layerfs(["--help"]);
  assert.equal(all.code, 0);
  assert.match(all.stdout, /Commands:/);
  assert.equal(
    (await layerfs(["help", "diff"])).stdout,
    (await layerfs(["diff", "-h"])).stdout,
  );
});

Deno.test("cli: errors are one line with the fix, --json prints one document", async () => {
  await using tmp = await tempDir();
  const g = ["--root", `${tmp.path}/s`, "--backend", "vfs"];
  await layerfs([...g, "init"]);
  const cases: [string[], RegExp][] = [
    [["create", "../etc"], /^layerfs: Invalid layer id "\.\.\/etc"/],
    [["create", "a", "--parent", "nope"], /parent layer "nope" does not exist/],
    [["mount", "nope"], /Layer "nope" does not exist; run "layerfs ls"/],
    [["apply", "t", `${tmp.path}/missing.tar`], /^layerfs: .*No such file/],
  ];
  for (const [args, msg] of cases) {
    const r = await layerfs([...g, ...args]);
    assert.equal(r.code, 1, args.join(" "));
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, msg);
    const j = await layerfs([...g, "--json", ...args]);
    assert.equal(j.code, 1);
    assert.equal(JSON.parse(j.stdout).error.exitCode, 1);
  }
  // A corrupt tar names the problem in one line and leaves no layer behind.
  await Deno.writeFile(`${tmp.path}/junk.tar`, new Uint8Array(700).fill(65));
  const junk = await layerfs([...g, "apply", "junk", `${tmp.path}/junk.tar`]);
  assert.equal(junk.code, 1);
  assert.equal(junk.stderr.trim().split("\n").length, 1);
  assert.equal((await layerfs([...g, "exists", "junk"])).code, 1);
  // xz input is refused with how to fix it.
  await Deno.writeFile(
    `${tmp.path}/x.xz`,
    new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, 1, 2]),
  );
  const xz = await layerfs([...g, "apply", "x", `${tmp.path}/x.xz`]);
  assert.equal(xz.code, 1);
  assert.match(xz.stderr, /xz-compressed.*xz -dc/);
  // Every successful command's --json output is one JSON document.
  for (
    const args of [
      ["status"],
      ["ls"],
      ["create", "j"],
      ["exists", "j"],
      ["size", "j"],
      ["changes", "j"],
      ["mount", "j"],
      ["umount", "j"],
      ["check"],
      ["cleanup"],
      ["rm", "j"],
      ["init"],
    ]
  ) {
    const r = await layerfs([...g, "--json", ...args]);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    JSON.parse(r.stdout);
  }
});

Deno.test("cli: default root from LAYERFS_ROOT, XDG_DATA_HOME, HOME; --root wins", async () => {
  await using tmp = await tempDir();
  const status = async (env: Record<string, string>, extra: string[] = []) => {
    const r = await layerfs([...extra, "--backend", "vfs", "--json", "init"], {
      env,
    });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).root as string;
  };
  // (as root the default is /var/lib/layerfs: never touched here; LAYERFS_ROOT overrides it)
  assert.equal(
    await status({ LAYERFS_ROOT: `${tmp.path}/env` }),
    `${tmp.path}/env`,
  );
  assert.equal(
    await status({ LAYERFS_ROOT: `${tmp.path}/env` }, [
      "--root",
      `${tmp.path}/flag`,
    ]),
    `${tmp.path}/flag`,
  );
  const { defaultRoot } = await import("../../src/cli/_root.ts");
  const env = (m: Record<string, string>) => (k: string) => m[k];
  assert.equal(
    defaultRoot({ env: env({}), uid: 0, cwd: "/" }),
    "/var/lib/layerfs",
  );
  assert.equal(
    defaultRoot({ env: env({ HOME: "/home/a" }), uid: 1000, cwd: "/" }),
    "/home/a/.local/share/layerfs",
  );
  assert.equal(
    defaultRoot({
      env: env({ HOME: "/home/a", XDG_DATA_HOME: "/x/data" }),
      uid: 1000,
      cwd: "/",
    }),
    "/x/data/layerfs",
  );
  assert.equal(
    defaultRoot({
      env: env({ HOME: "/home/a", XDG_DATA_HOME: "rel" }),
      uid: 1000,
      cwd: "/",
    }),
    "/home/a/.local/share/layerfs",
  );
  assert.equal(
    defaultRoot({
      flag: "s/./x/",
      env: env({ LAYERFS_ROOT: "/e" }),
      uid: 0,
      cwd: "/w",
    }),
    "/w/s/x",
  );
  assert.throws(
    () => defaultRoot({ env: env({}), uid: 1000, cwd: "/" }),
    /HOME is not set/,
  );
});

privilegedTest(
  "cli: check finds planted problems and --repair fixes the safe ones",
  async () => {
    await using tmp = await tempDir();
    const root = `${tmp.path}/store`;
    const g = ["--root", root, "--backend", "overlay"];
    await layerfs([...g, "init"]);
    await layerfs([...g, "create", "base"]);
    await layerfs([...g, "create", "app", "--parent", "base"]);
    assert.equal((await layerfs([...g, "check"])).code, 0);

    // Plant: a layer whose parent is missing (made by hand, so without
    // overlay's work dir and link), a staging leftover, a -removing
    // leftover, a stale count, an orphan mount, a diff dir without metadata.
    await Deno.writeTextFile(`${root}/layers/orphan`, "ghost\n");
    await Deno.mkdir(`${root}/diff/orphan`);
    await Deno.mkdir(`${root}/staging/crashed/diff`, { recursive: true });
    await Deno.mkdir(`${root}/diff/old-removing/etc`, { recursive: true });
    await Deno.mkdir(`${root}/diff/stray`);
    await Deno.mkdir(`${root}/run/counts`, { recursive: true });
    await Deno.writeTextFile(`${root}/run/counts/app`, "2\n");
    await Deno.mkdir(`${root}/mnt/base`, { recursive: true });
    const m = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "none", `${root}/mnt/base`],
    }).output();
    assert.equal(m.code, 0);

    const r = await layerfs([...g, "--json", "check"]);
    assert.equal(r.code, 1);
    const kinds = JSON.parse(r.stdout).problems.map((
      p: { kind: string; subject: string },
    ) => `${p.kind} ${p.subject}`)
      .sort();
    assert.deepEqual(kinds, [
      "leftover diff/old-removing",
      "leftover staging/crashed",
      `missing-dir l/${shortLinkName("orphan")}`,
      "missing-dir work/orphan",
      "missing-parent orphan",
      "orphan-diff diff/stray",
      "orphan-mount mnt/base",
      "stale-count app",
    ]);
    const human = await layerfs([...g, "check"]);
    assert.match(human.stdout, /problem: layer "orphan" has missing parent/);

    const fix = await layerfs([...g, "--json", "check", "--repair"]);
    assert.equal(fix.code, 1, "the missing parent is left to the user");
    const left = JSON.parse(fix.stdout).problems.filter((
      p: { repaired: boolean },
    ) => !p.repaired)
      .map((p: { kind: string }) => p.kind).sort();
    assert.deepEqual(left, ["missing-parent"]); // overlay's own entries remade
    // A repaired problem says what was done, not the advice to do it.
    const said = Object.fromEntries(
      JSON.parse(fix.stdout).problems.map((
        p: { subject: string; message: string },
      ) => [p.subject, p.message]),
    );
    assert.equal(
      said["staging/crashed"],
      "staging/crashed is left over from an interrupted operation; deleted it",
    );
    assert.match(said["diff/stray"], /died half way\); deleted it$/);
    assert.match(said["app"], /is not mounted; dropped it$/);
    assert.match(
      said["mnt/base"],
      /no mount count is recorded for it; unmounted it$/,
    );
    assert.match(said["work/orphan"], /; remade it$/);
    assert.match(said["orphan"], /remove it with "layerfs rm --force orphan"$/);
    await Deno.mkdir(`${root}/staging/again`);
    const text = await layerfs([...g, "check", "--repair"]);
    assert.match(
      text.stdout,
      /^repaired: staging\/again is left over from an interrupted operation; deleted it$/m,
    );
    assert.doesNotMatch(text.stdout, /^repaired: .*--repair/m);
    assert.ok((await Deno.stat(`${root}/work/orphan`)).isDirectory);
    await assert.rejects(Deno.stat(`${root}/diff/stray`), Deno.errors.NotFound);
    await assert.rejects(
      Deno.stat(`${root}/staging/crashed`),
      Deno.errors.NotFound,
    );
    await assert.rejects(
      Deno.stat(`${root}/diff/old-removing`),
      Deno.errors.NotFound,
    );
    await assert.rejects(
      Deno.stat(`${root}/run/counts/app`),
      Deno.errors.NotFound,
    );
    const info = await Deno.readTextFile("/proc/self/mountinfo");
    assert.equal(info.includes(` ${root}/mnt/base `), false);

    // What is left is fixed by the command the message names.
    await layerfs([...g, "rm", "--force", "orphan"]);
    assert.equal((await layerfs([...g, "check"])).code, 0);
  },
);

privilegedTest(
  "cli: diff outputs: a failed write gives the diff's views back; -o writes through fifos and symlinks, keeps modes",
  async () => {
    await using tmp = await tempDir();
    const d = tmp.path;
    await makeTars(d);
    const root = `${d}/store`;
    const g = ["--root", root, "--backend", "overlay"];
    const ok = async (args: string[]) => {
      const r = await layerfs([...g, ...args]);
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      return r;
    };
    await ok(["apply", "base", `${d}/base.tar`]);
    await ok(["apply", "child", "--parent", "base", `${d}/child.tar`]);
    await ok(["apply", "other", `${d}/base.tar.zst`]);
    // Big and incompressible, so the output fails while the diff is mid-stream.
    await sh(
      "mkdir -p bigsrc/data && head -c 24000000 /dev/urandom > bigsrc/data/blob && tar -C bigsrc -cf big.tar .",
      d,
    );
    await ok(["apply", "big", "--parent", "child", `${d}/big.tar`]);
    const held = async () => ({
      gets: JSON.parse((await ok(["--json", "ls"])).stdout).layers
        .filter((l: { mounts: number }) => l.mounts > 0)
        .map((l: { id: string }) => l.id),
      mounted: (await Deno.readTextFile("/proc/self/mountinfo")).includes(
        ` ${root}/mnt/`,
      ),
    });

    // A naive diff (both views mounted) into a full device: every output
    // form fails with one line and gives the views back before exiting.
    for (const extra of [[], ["--compress", "gzip"], ["--compress", "zstd"]]) {
      const cmd = [Deno.execPath(), "run", "-A", MAIN, ...g, "diff", "big"]
        .concat("--parent", "other", ...extra)
        .map((a) => `'${a}'`).join(" ");
      const out = await new Deno.Command("sh", {
        args: ["-c", `${cmd} > /dev/full`],
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const err = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1, `${extra.join(" ")}: ${err}`);
      assert.equal(err.trim().split("\n").length, 1, err);
      assert.deepEqual(
        await held(),
        { gets: [], mounted: false },
        extra.join(" "),
      );
    }

    const want = (await ok(["diff", "child"])).bytes;
    // A fifo is written through, not replaced by a regular file.
    await sh("mkfifo fifo", d);
    const cat = new Deno.Command("sh", {
      args: ["-c", "cat fifo > got.tar"],
      cwd: d,
    })
      .spawn();
    await ok(["diff", "child", "-o", `${d}/fifo`]);
    assert.equal((await cat.status).code, 0);
    assert.ok((await Deno.lstat(`${d}/fifo`)).isFifo);
    assert.deepEqual(await Deno.readFile(`${d}/got.tar`), want);
    // A symlink is followed: its target gets the tar (keeping its mode), the link stays.
    await Deno.writeTextFile(`${d}/real.tar`, "old", { mode: 0o600 });
    await Deno.chmod(`${d}/real.tar`, 0o600);
    await Deno.symlink("real.tar", `${d}/link.tar`);
    await ok(["diff", "child", "-o", `${d}/link.tar`]);
    assert.ok((await Deno.lstat(`${d}/link.tar`)).isSymlink);
    assert.deepEqual(await Deno.readFile(`${d}/real.tar`), want);
    assert.equal((await Deno.stat(`${d}/real.tar`)).mode! & 0o777, 0o600);
    // A directory or a dangling link is a usage error, and nothing is left behind.
    await Deno.symlink("nowhere", `${d}/dangling.tar`);
    for (const target of [d, `${d}/dangling.tar`]) {
      const r = await layerfs([...g, "diff", "child", "-o", target]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /directory|does not exist/);
    }
    assert.deepEqual(
      [...Deno.readDirSync(d)].map((e) => e.name).filter((n) =>
        n.includes(".layerfs-")
      ),
      [],
    );
    assert.deepEqual(await held(), { gets: [], mounted: false });
    await ok(["rm", "big"]);
  },
);
