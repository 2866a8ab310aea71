/**
 * The privileged helper, for real: an unprivileged user runs the CLI on an
 * overlay store it owns, and mounts go through `sudo -n layerfs-helper`.
 * Refusals: ids with "..", stores not in the config, symlinked store paths and
 * mnt dirs, a config writable by others, hostile environment variables.
 *
 * These tests write the real /etc/layerfs/helper.json and
 * /etc/sudoers.d/layerfs (the helper's config path is a constant on purpose)
 * and restore whatever was there afterwards.
 */
import assert from "node:assert/strict";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { CONFIG_PATH, loadConfig, parseConfig } from "../../helper/config.ts";
import {
  callerAllowed,
  callerFrom,
  parseAccounts,
} from "../../helper/identity.ts";
import {
  authorize,
  hostileEnvPresent,
  parseRequest,
} from "../../helper/request.ts";
import {
  helperDoctor,
  helperInstall,
  SUDOERS_PATH,
  sudoersRule,
} from "../../helper/install.ts";
import { runHelper } from "../../helper/main.ts";
import { HelperError, InvalidLayerId } from "../../src/errors.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const USER = "layerfs-test";

Deno.test("helper: requests are validated before any path is built", () => {
  for (
    const id of [
      "..",
      "../etc",
      "a/b",
      "a,b",
      "a:b",
      "a\nb",
      "",
      "x-removing",
      ".hidden",
    ]
  ) {
    assert.throws(
      () => parseRequest(["mount", "/srv/s", id]),
      InvalidLayerId,
      id,
    );
  }
  for (
    const root of [
      "relative",
      "/srv/../etc",
      "/srv/s/",
      "/",
      "/srv//s",
      "/srv/./s",
    ]
  ) {
    assert.throws(() => parseRequest(["mount", root, "a"]), HelperError, root);
  }
  assert.throws(
    () => parseRequest(["mount", "/srv/s", "a", "-o", "x"]),
    HelperError,
  );
  assert.throws(() => parseRequest(["bind", "/srv/s", "a"]), HelperError);
  assert.deepEqual(parseRequest(["umount", "/srv/s", "a"]), {
    op: "umount",
    root: "/srv/s",
    id: "a",
  });
});

Deno.test("helper: config, callers and hostile environments", () => {
  assert.throws(() => parseConfig("{"), HelperError);
  assert.throws(
    () => parseConfig('{"stores":[{"root":"/a/../b"}]}'),
    /absolute path/,
  );
  assert.throws(
    () => parseConfig('{"stores":[{"root":"/a","users":"x"}]}'),
    /list/,
  );
  const config = parseConfig(
    '{"stores":[{"root":"/srv/s","users":["alice"],"groups":["ops",990]}]}',
  );
  const accounts = parseAccounts(
    "alice:x:1000:1000::/:/bin/sh\nbob:x:1001:1001::/:/bin/sh\ncarol:x:1002:990::/:/bin/sh\neve:x:1003:1003::/:/bin/sh\n",
    "ops:x:991:bob\nlayerfs:x:990:\n",
  );
  const store = config.stores[0];
  assert.equal(callerAllowed({ uid: 1000, gid: 1000 }, store, accounts), true); // listed user
  assert.equal(callerAllowed({ uid: 1001, gid: 1001 }, store, accounts), true); // member of ops
  assert.equal(callerAllowed({ uid: 1002, gid: 1002 }, store, accounts), true); // primary group 990
  assert.equal(callerAllowed({ uid: 1003, gid: 1003 }, store, accounts), false);
  assert.equal(callerAllowed({ uid: 0, gid: 0 }, store, accounts), true);
  assert.throws(
    () =>
      authorize(
        { op: "mount", root: "/srv/other", id: "a" },
        { uid: 1000, gid: 1000 },
        config,
        accounts,
      ),
    /not in the helper's config/,
  );
  assert.throws(
    () =>
      authorize(
        { op: "mount", root: "/srv/s", id: "a" },
        { uid: 1003, gid: 1003 },
        config,
        accounts,
      ),
    /may not use store/,
  );
  // Identity: sudo's variables as root; anyone else is refused (never setuid).
  const env = (m: Record<string, string>) => (k: string) => m[k];
  assert.deepEqual(callerFrom(0, env({ SUDO_UID: "1000", SUDO_GID: "1000" })), {
    uid: 1000,
    gid: 1000,
  });
  assert.deepEqual(callerFrom(0, env({})), { uid: 0, gid: 0 });
  assert.throws(
    () => callerFrom(1000, env({})),
    /must run as root through sudo/,
  );
  assert.throws(
    () => callerFrom(0, env({ SUDO_UID: "1000; rm" })),
    HelperError,
  );
  // Hostile variables make the helper refuse before it reads anything.
  for (
    const k of [
      "DENO_INTERNAL_CHILD_ENTRYPOINT",
      "NODE_CHANNEL_FD",
      "LD_PRELOAD",
    ]
  ) {
    assert.deepEqual(hostileEnvPresent(env({ [k]: "x" })), [k]);
    assert.throws(
      () => runHelper(["mount", "/srv/s", "a"], env({ [k]: "x" }), 0),
      /Refusing to run with/,
    );
  }
  // sudoers input is checked before anything is written.
  assert.throws(() => sudoersRule("bad group", "/usr/bin/x"), HelperError);
  assert.throws(() => sudoersRule("g", "/usr/bin/x, ALL"), HelperError);
  assert.match(
    sudoersRule("layerfs", "/usr/local/bin/layerfs-helper"),
    /^%layerfs ALL=\(root\) NOPASSWD: \/usr\/local\/bin\/layerfs-helper$/m,
  );
});

async function run(cmd: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

async function ensureUser(): Promise<{ uid: number; gid: number }> {
  if ((await run(["id", "-u", USER])).code !== 0) {
    const r = await run([
      "useradd",
      "--no-create-home",
      "--user-group",
      "--shell",
      "/usr/sbin/nologin",
      USER,
    ]);
    // A parallel run may have created it meanwhile.
    if (r.code !== 0 && (await run(["id", "-u", USER])).code !== 0) {
      throw new Error(r.stderr);
    }
  }
  return {
    uid: Number((await run(["id", "-u", USER])).stdout),
    gid: Number((await run(["id", "-g", USER])).stdout),
  };
}

/** Saves a file (or its absence) and returns a restorer. */
async function save(path: string): Promise<() => Promise<void>> {
  let data: Uint8Array | undefined;
  let mode = 0o644;
  try {
    data = await Deno.readFile(path);
    mode = (await Deno.stat(path)).mode! & 0o7777;
  } catch { /* absent */ }
  return async () => {
    if (data === undefined) await Deno.remove(path).catch(() => {});
    else {
      await Deno.writeFile(path, data, { mode });
      await Deno.chmod(path, mode);
    }
  };
}

privilegedTest(
  "helper: an unprivileged user mounts through sudo; refusals end to end",
  async () => {
    const { uid, gid } = await ensureUser();
    await using tmp = await tempDir();
    const t = tmp.path;
    await Deno.chmod(t, 0o755);
    // The user cannot read /root (where npx keeps deno) nor, maybe, the repo:
    // give it a copy of the sources and a link to the deno binary.
    await Deno.mkdir(`${t}/repo`);
    assert.equal(
      (await run([
        "cp",
        "-r",
        `${REPO}/src`,
        `${REPO}/helper`,
        `${REPO}/mod.ts`,
        `${REPO}/deno.json`,
        `${t}/repo/`,
      ])).code,
      0,
    );
    try {
      await Deno.link(Deno.execPath(), `${t}/deno`);
    } catch {
      await Deno.copyFile(Deno.execPath(), `${t}/deno`);
    }
    await Deno.chmod(`${t}/deno`, 0o755);
    const helperBin = `${t}/layerfs-helper`;
    // The same permissions scripts/compile.ts embeds in the compiled helper.
    await Deno.writeTextFile(
      helperBin,
      `#!/bin/sh\nexec ${t}/deno run --no-config --allow-read=/etc/passwd,/etc/group --allow-ffi ` +
        `--allow-env=SUDO_UID,SUDO_GID,DENO_INTERNAL_CHILD_ENTRYPOINT,NODE_CHANNEL_FD,LD_PRELOAD,LD_LIBRARY_PATH,LD_AUDIT ` +
        `${t}/repo/helper/main.ts "$@"\n`,
    );
    await Deno.chmod(helperBin, 0o755);
    const store = `${t}/store`;
    const other = `${t}/other`;
    await Deno.mkdir(`${t}/home`);
    for (const d of [store, other, `${t}/home`]) {
      await Deno.mkdir(d, { recursive: true });
      await Deno.chown(d, uid, gid);
    }
    await Deno.symlink(store, `${t}/link`);
    // Tars the user imports: a base, and a child that deletes a file and
    // makes a dir opaque (so the user's unprivileged extraction must write
    // whiteout state the helper's mount reads: user.overlay.* + userxattr).
    await Deno.mkdir(`${t}/b/etc`, { recursive: true });
    await Deno.mkdir(`${t}/b/var/cache`, { recursive: true });
    await Deno.writeTextFile(`${t}/b/etc/hosts`, "base\n");
    await Deno.writeTextFile(`${t}/b/etc/passwd`, "root\n");
    await Deno.writeTextFile(`${t}/b/var/cache/old`, "old\n");
    await Deno.mkdir(`${t}/c/etc`, { recursive: true });
    await Deno.mkdir(`${t}/c/var/cache`, { recursive: true });
    await Deno.writeTextFile(`${t}/c/etc/motd`, "child\n");
    await Deno.writeTextFile(`${t}/c/etc/.wh.passwd`, "");
    await Deno.writeTextFile(`${t}/c/var/cache/.wh..wh..opq`, "");
    await Deno.writeTextFile(`${t}/c/var/cache/new`, "new\n");
    await run(["tar", "-C", `${t}/b`, "-cf", `${t}/b.tar`, "."]);
    await run(["tar", "-C", `${t}/c`, "-cf", `${t}/c.tar`, "."]);
    await Deno.chmod(`${t}/b.tar`, 0o644);
    await Deno.chmod(`${t}/c.tar`, 0o644);

    const restoreConfig = await save(CONFIG_PATH);
    const restoreSudoers = await save(SUDOERS_PATH);
    try {
      const installed = await helperInstall({
        group: USER,
        path: helperBin,
        stores: [store, `${t}/link`],
      });
      assert.match(
        installed.messages.join("\n"),
        /wrote \/etc\/sudoers.d\/layerfs/,
      );
      assert.equal(
        loadConfig(CONFIG_PATH).stores.some((s) => s.root === store),
        true,
      );

      const asUser = (args: string[], extraEnv: string[] = []) =>
        run([
          "sudo",
          "-u",
          USER,
          "env",
          `HOME=${t}/home`,
          `DENO_DIR=${t}/home/deno`,
          "NO_COLOR=1",
          `LAYERFS_HELPER=sudo -n ${helperBin}`,
          ...extraEnv,
          ...args,
        ]);
      const cli = (args: string[]) =>
        asUser([
          `${t}/deno`,
          "run",
          "-A",
          `${t}/repo/src/cli/main.ts`,
          "--root",
          store,
          ...args,
        ]);
      const helper = (args: string[], extraEnv: string[] = []) =>
        asUser(["sudo", "-n", helperBin, ...args], extraEnv);

      // The CLI as the user: overlay store, mounts through the helper.
      let r = await cli(["--backend", "overlay", "init"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await cli(["apply", "base", `${t}/b.tar`])).code, 0);
      r = await cli(["apply", "child", "--parent", "base", `${t}/c.tar`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        (await cli(["create", "ctr", "--parent", "child", "--rw"])).code,
        0,
      );
      r = await cli(["mount", "ctr"]);
      assert.equal(r.code, 0, r.stderr);
      const view = r.stdout.trim();
      assert.equal(view, `${store}/mnt/ctr`);
      const info = await Deno.readTextFile("/proc/self/mountinfo");
      const line = info.split("\n").find((l) => l.split(" ")[4] === view);
      assert.ok(line, "mounted");
      assert.match(line!, / rw,nosuid,nodev[ ,]/);
      assert.match(line!, / - overlay /);
      assert.match(line!, /[ ,]userxattr(,|$)/);
      r = await asUser(["cat", `${view}/etc/motd`, `${view}/etc/hosts`]);
      assert.equal(r.stdout, "child\nbase\n");
      r = await asUser(["ls", "-A", `${view}/etc`, `${view}/var/cache`]);
      assert.equal(
        r.stdout,
        `${view}/etc:\nhosts\nmotd\n\n${view}/var/cache:\nnew\n`,
        "the child's whiteout and opaque dir take effect in the helper's mount",
      );
      r = await asUser(["sh", "-c", `echo hi > ${view}/etc/new`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        (await cli(["changes", "ctr"])).stdout,
        "C /etc\nA /etc/new\n",
      );
      r = await cli(["umount", "ctr"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        (await Deno.readTextFile("/proc/self/mountinfo")).includes(` ${view} `),
        false,
      );

      // Hostile variables: sudo drops them (the helper refuses when it sees one,
      // so success proves they never reached it) and refuses to set them.
      await Deno.writeTextFile(
        `${t}/evil.ts`,
        `Deno.writeTextFileSync("${t}/pwned", "x");`,
      );
      r = await helper(["mount", store, "ctr"], [
        `DENO_INTERNAL_CHILD_ENTRYPOINT=${t}/evil.ts`,
        "NODE_CHANNEL_FD=0",
        `LD_LIBRARY_PATH=${t}`,
        `LD_PRELOAD=${t}/none.so`,
      ]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(JSON.parse(r.stdout.trim().split("\n").at(-1)!), {
        ok: true,
        op: "mount",
        target: view,
      });
      await assert.rejects(Deno.stat(`${t}/pwned`), Deno.errors.NotFound);
      r = await asUser([
        "sudo",
        "-n",
        `DENO_INTERNAL_CHILD_ENTRYPOINT=${t}/evil.ts`,
        helperBin,
        "umount",
        store,
        "ctr",
      ]);
      assert.notEqual(r.code, 0);
      r = await helper(["umount", store, "ctr"]);
      assert.equal(r.code, 0, r.stdout);
      assert.equal(JSON.parse(r.stdout).wasMounted, true);

      const refused = async (args: string[], why: RegExp) => {
        const res = await helper(args);
        assert.equal(
          res.code,
          1,
          `${args.join(" ")}: ${res.stdout} ${res.stderr}`,
        );
        const reply = JSON.parse(res.stdout.trim().split("\n").at(-1)!);
        assert.equal(reply.ok, false);
        assert.match(reply.error.message, why);
      };
      await refused(["mount", store, ".."], /Invalid layer id/);
      await refused(["mount", store, "../../etc"], /Invalid layer id/);
      await refused(
        ["mount", `${store}/../other`, "ctr"],
        /must be absolute, without/,
      );
      await refused(["mount", other, "ctr"], /not in the helper's config/);
      await refused(["mount", `${t}/link`, "ctr"], /symlink/);
      await refused(["mount", store, "ctr", "-o", "suid"], /Usage/);
      // A mnt dir swapped for a symlink (to a dir the user owns, or to /etc).
      await asUser([
        "sh",
        "-c",
        `rmdir ${store}/mnt/ctr && ln -s ${t}/home ${store}/mnt/ctr`,
      ]);
      await refused(["mount", store, "ctr"], /symlink/);
      await asUser([
        "sh",
        "-c",
        `rm ${store}/mnt/ctr && ln -s /etc ${store}/mnt/ctr`,
      ]);
      await refused(["umount", store, "ctr"], /symlink/);
      await asUser([
        "sh",
        "-c",
        `rm ${store}/mnt/ctr && mkdir ${store}/mnt/ctr`,
      ]);
      // A parent layer whose diff dir is a symlink.
      await asUser([
        "sh",
        "-c",
        `mv ${store}/diff/base ${store}/diff/base.real && ln -s base.real ${store}/diff/base`,
      ]);
      await refused(["mount", store, "ctr"], /symlink/);
      await asUser([
        "sh",
        "-c",
        `rm ${store}/diff/base && mv ${store}/diff/base.real ${store}/diff/base`,
      ]);
      // Something that is not this layer's overlay mounted on mnt/<id> is left alone.
      assert.equal(
        (await run(["mount", "-t", "tmpfs", "none", `${store}/mnt/ctr`])).code,
        0,
      );
      await refused(["umount", store, "ctr"], /not this layer's overlay/);
      assert.equal((await run(["umount", `${store}/mnt/ctr`])).code, 0);
      // A config writable by others is refused, whatever it says.
      await Deno.chmod(CONFIG_PATH, 0o666);
      await refused(["mount", store, "ctr"], /writable by others/);
      await Deno.chmod(CONFIG_PATH, 0o664);
      await refused(["mount", store, "ctr"], /writable by its group/);
      await Deno.chmod(CONFIG_PATH, 0o644);
      await Deno.chown(CONFIG_PATH, uid, 0);
      await refused(["mount", store, "ctr"], /owned by uid/);
      await Deno.chown(CONFIG_PATH, 0, 0);
      // And it works again once fixed.
      r = await helper(["mount", store, "ctr"]);
      assert.equal(r.code, 0, r.stdout);
      assert.equal((await helper(["umount", store, "ctr"])).code, 0);
    } finally {
      await restoreSudoers();
      await restoreConfig();
    }
  },
);

privilegedTest(
  "helper doctor: flags setuid and file capabilities, explains",
  async () => {
    await using tmp = await tempDir();
    const bin = `${tmp.path}/layerfs-helper`;
    await Deno.writeTextFile(bin, "#!/bin/sh\n");
    await Deno.chmod(bin, 0o4755);
    const r = await helperDoctor({ path: bin });
    assert.equal(r.ok, false);
    const setuid = r.checks.find((c) => /setuid/.test(c.message))!;
    assert.equal(setuid.ok, false);
    assert.match(setuid.message, /chmod u-s.*any user run any code as root/);
    await Deno.chmod(bin, 0o755);
    const again = await helperDoctor({ path: bin });
    assert.equal(again.checks.find((c) => /setuid/.test(c.message))!.ok, true);
    if ((await run(["sh", "-c", "command -v setcap"])).code === 0) {
      await run(["setcap", "cap_sys_admin+ep", bin]);
      const caps = await helperDoctor({ path: bin });
      assert.equal(
        caps.checks.find((c) => /capabilities/.test(c.message))!.ok,
        false,
      );
    }
  },
);
