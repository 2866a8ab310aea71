/**
 * The CLI under faults and bad inputs (issue 8): compressed inputs cut short
 * or corrupt, a file size limit (SIGXFSZ), a full file system, a directory
 * as input, a closed stdout; one line on stderr and exactly one JSON document
 * with --json, every time. Also --version, the JSON types of every command,
 * umount of an unmounted layer, and a failed unprivileged overlay init.
 */
import assert from "node:assert/strict";
import { privilegedTest, tempDir } from "../_privileged.ts";

const MAIN = new URL("../../src/cli/main.ts", import.meta.url).pathname;
const dec = new TextDecoder();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `layerfs ARGS` through `bash -c` (with `prefix` before it and `suffix` after). */
async function layerfs(
  args: string[],
  opts: { prefix?: string; suffix?: string; cwd?: string } = {},
): Promise<Run> {
  const cmd = [Deno.execPath(), "run", "-A", MAIN, ...args]
    .map((a) => `'${a}'`).join(" ");
  const out = await new Deno.Command("bash", {
    args: ["-c", `${opts.prefix ?? ""} ${cmd} ${opts.suffix ?? ""}`],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    cwd: opts.cwd,
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

async function sh(cmd: string, cwd?: string): Promise<void> {
  const out = await new Deno.Command("sh", { args: ["-c", cmd], cwd })
    .output();
  assert.equal(out.code, 0, `${cmd}: ${dec.decode(out.stderr)}`);
}

/** Exit 1, one line on stderr matching `msg`, no stack trace; with --json one error document. */
async function oneLineError(g: string[], args: string[], msg: RegExp) {
  const r = await layerfs([...g, ...args]);
  assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /^layerfs: /);
  assert.match(r.stderr, msg);
  assert.doesNotMatch(r.stderr, /Uncaught|\n\s+at /);
  const j = await layerfs([...g, "--json", ...args]);
  assert.equal(j.code, 1);
  const doc = JSON.parse(j.stdout);
  assert.equal(doc.error.exitCode, 1);
  assert.match(doc.error.message, msg);
  return doc.error as { name: string; message: string };
}

Deno.test("cli apply: cut, corrupt or padded gzip/zstd inputs are refused, naming the file", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  await sh(
    "mkdir -p src/etc && head -c 200000 /dev/urandom > src/etc/blob && seq 1 50000 > src/etc/seq && " +
      "tar -C src -cf t.tar . && gzip -kf t.tar && zstd -qf t.tar",
    d,
  );
  const gz = await Deno.readFile(`${d}/t.tar.gz`);
  const zst = await Deno.readFile(`${d}/t.tar.zst`);
  const files: [string, Uint8Array, RegExp][] = [];
  for (const n of [10, 100, 1000, 30000]) {
    files.push([
      `cut${n}.tar.zst`,
      zst.subarray(0, n),
      /the zstd stream is truncated \(ends inside a frame\); the file is incomplete — download it again/,
    ]);
  }
  files.push([
    "nocheck.tar.zst",
    zst.subarray(0, zst.length - 4),
    /zstd stream is truncated/,
  ]);
  const badSum = zst.slice();
  badSum[badSum.length - 1] ^= 0xff;
  files.push([
    "badsum.tar.zst",
    badSum,
    /zstd content checksum does not match/,
  ]);
  const crc = gz.slice();
  crc.fill(0, gz.length - 8, gz.length - 4);
  files.push(["crc0.tar.gz", crc, /gzip CRC-32 does not match/]);
  files.push([
    "cut.tar.gz",
    gz.subarray(0, gz.length >> 1),
    /gzip stream is truncated \(ends inside a member\)/,
  ]);
  files.push([
    "trail.tar.zst",
    new Uint8Array([...zst, 1, 2, 3]),
    /garbage after the end of the zstd data/,
  ]);
  const g = ["--root", `${d}/store`, "--backend", "vfs"];
  assert.equal((await layerfs([...g, "init"])).code, 0);
  for (const [name, bytes, why] of files) {
    const path = `${d}/${name}`;
    await Deno.writeFile(path, bytes);
    const err = await oneLineError(g, ["apply", "x", path], why);
    assert.equal(err.name, "InvalidArchive", name);
    assert.ok(
      err.message.startsWith(`Invalid archive ${path}: `),
      err.message,
    );
    // From stdin, the input is named "stdin".
    const r = await layerfs([...g, "--json", "apply", "x", "-"], {
      prefix: `cat '${path}' |`,
    });
    assert.equal(r.code, 1);
    assert.match(
      JSON.parse(r.stdout).error.message,
      /^Invalid archive stdin: /,
    );
    assert.equal((await layerfs([...g, "exists", "x"])).code, 1, name);
  }
  // The whole files apply, with compression reported the same way as diff's.
  for (
    const [f, c] of [["t.tar", null], ["t.tar.gz", "gzip"], [
      "t.tar.zst",
      "zstd",
    ]]
  ) {
    const r = await layerfs([...g, "--json", "apply", `l-${c}`, `${d}/${f}`]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.compression, c);
    assert.equal(typeof doc.size, "number");
  }
});

Deno.test("cli: a file that is no file, a missing one, and a directory as -o name the path", async () => {
  await using tmp = await tempDir();
  const g = ["--root", `${tmp.path}/store`, "--backend", "vfs"];
  await layerfs([...g, "init"]);
  await oneLineError(
    g,
    ["apply", "x", tmp.path],
    new RegExp(
      `Cannot read ${tmp.path}: Is a directory; it is a directory; pass a file`,
    ),
  );
  await oneLineError(
    g,
    ["apply", "x", `${tmp.path}/nope.tar`],
    new RegExp(`Cannot read ${tmp.path}/nope.tar: No such file or directory`),
  );
  await layerfs([...g, "create", "e"]);
  await oneLineError(
    g,
    ["diff", "e", "-o", `${tmp.path}/no/such/dir/e.tar`],
    new RegExp(`Cannot write to ${tmp.path}/no/such/dir/e.tar: No such file`),
  );
});

privilegedTest(
  "cli: a full file system names the file and says what to do",
  async () => {
    await using tmp = await tempDir();
    const d = tmp.path;
    await sh(
      "head -c 3000000 /dev/urandom > big && mkdir -p s/data && cp big s/data/blob && tar -C s -cf big.tar .",
      d,
    );
    await Deno.mkdir(`${d}/small`);
    await sh(`mount -t tmpfs -o size=1m tmpfs '${d}/small'`);
    try {
      // apply into a store on the full file system
      const g = ["--root", `${d}/small/store`, "--backend", "vfs"];
      const e = await oneLineError(
        g,
        ["apply", "x", `${d}/big.tar`],
        /Cannot extract entry "(\.\/)?data\/blob": .*ENOSPC; the file system is full; free some space/,
      );
      assert.equal(e.name, "LayerfsError");
      // diff -o onto the full file system
      const big = ["--root", `${d}/store`, "--backend", "vfs"];
      assert.equal(
        (await layerfs([...big, "apply", "b", `${d}/big.tar`])).code,
        0,
      );
      await oneLineError(
        big,
        ["diff", "b", "-o", `${d}/small/b.tar`],
        new RegExp(
          `Cannot write to ${d}/small/b.tar: No space left on device; the file system is full`,
        ),
      );
      assert.deepEqual(
        [...Deno.readDirSync(`${d}/small`)].map((x) => x.name).filter((n) =>
          n.endsWith(".tmp")
        ),
        [],
      );
    } finally {
      await sh(`umount '${d}/small'`);
    }
  },
);

Deno.test("cli: under ulimit -f an apply fails with EFBIG naming the file, not killed by SIGXFSZ", async () => {
  await using tmp = await tempDir();
  const d = tmp.path;
  await sh(
    "mkdir -p s/data && head -c 3000000 /dev/urandom > s/data/blob && tar -C s -cf big.tar .",
    d,
  );
  const g = ["--root", `${d}/store`, "--backend", "vfs"];
  assert.equal((await layerfs([...g, "init"])).code, 0);
  // 1 MiB limit (prlimit counts bytes); the blob is 3 MB.
  const r = await layerfs([...g, "apply", "x", `${d}/big.tar`], {
    prefix: "prlimit --fsize=1048576 --",
  });
  assert.equal(r.code, 1, `killed? code ${r.code}: ${r.stderr}`);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(
    r.stderr,
    /Cannot extract entry "(\.\/)?data\/blob": .*EFBIG; .*file size limit.*ulimit -f/,
  );
  assert.equal((await layerfs([...g, "exists", "x"])).code, 1);
});

privilegedTest(
  "cli: diff into a closed pipe ends quietly with 141",
  async () => {
    await using tmp = await tempDir();
    const d = tmp.path;
    await sh(
      "mkdir -p s/data && head -c 8000000 /dev/urandom > s/data/blob && tar -C s -cf big.tar .",
      d,
    );
    const g = ["--root", `${d}/store`, "--backend", "overlay"];
    assert.equal((await layerfs([...g, "apply", "b", `${d}/big.tar`])).code, 0);
    for (const extra of [[], ["--compress", "zstd"]]) {
      const r = await layerfs([...g, "diff", "b", ...extra], {
        suffix: "| head -c 100 >/dev/null; exit ${PIPESTATUS[0]}",
      });
      assert.equal(r.stderr, "", `${extra}: ${r.stderr}`);
      assert.equal(r.code, 141, extra.join(" "));
    }
    const ls =
      JSON.parse((await layerfs([...g, "--json", "ls"])).stdout).layers;
    assert.equal(ls[0].mounts, 0, "the diff's views were given back");
  },
);

Deno.test("cli: --version prints deno.json's version; --json gives one document", async () => {
  const { version } = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  );
  const r = await layerfs(["--version"]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `layerfs ${version}\n`);
  const j = await layerfs(["--json", "--version"]);
  assert.deepEqual(JSON.parse(j.stdout), { version });
});

Deno.test("cli: umount of a layer that is not mounted is an error", async () => {
  await using tmp = await tempDir();
  const g = ["--root", `${tmp.path}/s`, "--backend", "vfs"];
  await layerfs([...g, "create", "a"]);
  const e = await oneLineError(
    g,
    ["umount", "a"],
    /^(layerfs: )?Layer "a" is not mounted; nothing to release$/m,
  );
  assert.equal(e.name, "LayerNotMounted");
  assert.equal((await layerfs([...g, "mount", "a"])).code, 0);
  assert.equal((await layerfs([...g, "umount", "a"])).code, 0);
  assert.equal((await layerfs([...g, "umount", "a"])).code, 1);
});

/** JSON types: every key of `doc` has the type `shape` gives. */
function typed(what: string, doc: unknown, shape: Record<string, string>) {
  assert.equal(typeof doc, "object", what);
  for (const [k, t] of Object.entries(shape)) {
    const v = (doc as Record<string, unknown>)[k];
    const got = v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
    assert.ok(t.split("|").includes(got), `${what}.${k}: ${got}, want ${t}`);
  }
}

privilegedTest(
  "cli: every command's --json output parses, with typed values",
  async () => {
    await using tmp = await tempDir();
    const d = tmp.path;
    await sh(
      "mkdir -p s/etc && echo hi > s/etc/hosts && tar -C s -cf t.tar . && gzip -k t.tar",
      d,
    );
    const g = ["--root", `${d}/store`, "--backend", "overlay"];
    const json = async (args: string[], code = 0) => {
      const r = await layerfs([...g, "--json", ...args]);
      assert.equal(r.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout.trim().split("\n").length, 1, "one document");
      assert.doesNotMatch(r.stdout, /undefined/);
      return JSON.parse(r.stdout);
    };
    typed("init", await json(["init"]), { root: "string", backend: "string" });
    typed("status", await json(["status"]), {
      backend: "string",
      layers: "number",
      mountedViews: "number",
      outstandingGets: "number",
      formatVersion: "number",
      backingFilesystem: "string",
    });
    typed("apply", await json(["apply", "base", `${d}/t.tar.gz`]), {
      id: "string",
      parent: "null",
      size: "number",
      compression: "string",
    });
    typed("create", await json(["create", "ctr", "--parent", "base", "--rw"]), {
      id: "string",
      parent: "string",
      readWrite: "boolean",
    });
    typed("exists", await json(["exists", "ctr"]), { exists: "boolean" });
    typed("exists (no)", await json(["exists", "nope"], 1), {
      exists: "boolean",
    });
    const ls = await json(["ls"]);
    typed("ls", ls, { layers: "array" });
    for (const l of ls.layers) {
      typed("ls[]", l, {
        id: "string",
        parent: "string|null",
        readWrite: "boolean",
        mounts: "number",
      });
    }
    typed("mount", await json(["mount", "ctr"]), {
      id: "string",
      path: "string",
    });
    typed("umount", await json(["umount", "ctr"]), {
      id: "string",
      released: "boolean",
    });
    const changes = await json(["changes", "ctr"]);
    typed("changes", changes, {
      id: "string",
      parent: "string",
      changes: "array",
    });
    for (const c of changes.changes) {
      typed("changes[]", c, { path: "string", kind: "string" });
    }
    typed("size", await json(["size", "base"]), {
      id: "string",
      parent: "null",
      size: "number",
    });
    for (
      const [args, compression] of [[[], null], [
        ["--compress", "gzip"],
        "gzip",
      ]] as const
    ) {
      const doc = await json(["diff", "base", "-o", `${d}/o.tar`, ...args]);
      typed("diff", doc, { file: "string", bytes: "number", parent: "null" });
      assert.equal(doc.compression, compression);
    }
    typed("check", await json(["check"]), {
      root: "string",
      layers: "number",
      problems: "array",
    });
    typed("cleanup", await json(["cleanup"]), { cleaned: "boolean" });
    typed("rm", await json(["rm", "ctr"]), {
      removed: "array",
      failed: "array",
    });
    typed("help", await json(["help"]), { help: "string" });
    typed("version", await json(["--version"]), { version: "string" });
    typed("helper doctor", await json(["helper", "doctor"], 1), {
      ok: "boolean",
      checks: "array",
    });
    typed("error", (await json(["mount", "nope"], 1)).error, {
      name: "string",
      message: "string",
      exitCode: "number",
    });
  },
);

// Needs root to switch to another user (setpriv).
privilegedTest(
  "cli: a failed unprivileged overlay init leaves nothing behind",
  async () => {
    await using tmp = await tempDir();
    await Deno.chmod(tmp.path, 0o777);
    const root = `${tmp.path}/store`;
    const r = await layerfs(["--root", root, "--backend", "overlay", "init"], {
      prefix: "setpriv --reuid=65534 --regid=65534 --clear-groups",
      cwd: tmp.path,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    const left = await Array.fromAsync(Deno.readDir(tmp.path)).catch(() => []);
    const inRoot = await Array.fromAsync(Deno.readDir(root)).catch(() => []);
    assert.deepEqual(
      { left: left.map((e) => e.name), inRoot: inRoot.map((e) => e.name) },
      { left: [], inRoot: [] },
      "no store directories without layerfs.json",
    );
  },
);
