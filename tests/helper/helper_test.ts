/**
 * The privileged helper, for real: an unprivileged user runs the CLI on an
 * overlay store it owns, and mounts go through `sudo -n layerfs-helper`.
 * Refusals: ids with "..", stores not in the config, symlinked store paths and
 * mnt dirs, a config writable by others, hostile environment variables. The
 * attacks of issue 9 are in attacks_test.ts, install and doctor in
 * install_test.ts; the shared setup (and its cleanup) is _fixture.ts.
 */
import assert from "node:assert/strict";
import { privilegedTest } from "../_privileged.ts";
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
import { helperInstall, sudoersRule } from "../../helper/install.ts";
import { runHelper } from "../../helper/main.ts";
import { HelperError, InvalidLayerId } from "../../src/errors.ts";
import { run, withHelper } from "./_fixture.ts";

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

privilegedTest(
  "helper: an unprivileged user mounts and unmounts through sudo with the CLI",
  () =>
    withHelper(async ({ store, cli, asUser }) => {
      assert.equal(
        loadConfig(CONFIG_PATH).stores.some((s) => s.root === store),
        true,
      );
      let r = await cli(["mount", "ctr"]);
      assert.equal(r.code, 0, r.stderr);
      const view = r.stdout.trim();
      assert.equal(view, `${store}/mnt/ctr`);
      const info = await Deno.readTextFile("/proc/self/mountinfo");
      const line = info.split("\n").find((l) => l.split(" ")[4] === view);
      assert.ok(line, "mounted");
      assert.match(line!, / rw,nosuid,nodev[ ,]/);
      assert.match(line!, / - overlay /);
      assert.match(line!, /[ ,]userxattr(,|$)/);
      assert.match(line!, /[ ,]redirect_dir=nofollow(,|$)/);
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
    }),
);

privilegedTest(
  "helper: a read-only base layer's view is a read-only bind mount, made and undone through sudo",
  () =>
    withHelper(async ({ store, cli, asUser }) => {
      let r = await cli(["mount", "base"]);
      assert.equal(r.code, 0, r.stderr);
      const view = r.stdout.trim();
      assert.equal(view, `${store}/mnt/base`);
      const line = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
        .find((l) => l.split(" ")[4] === view);
      assert.match(line ?? "", / ro,nosuid,nodev[ ,]/);
      r = await asUser(["cat", `${view}/etc/hosts`]);
      assert.equal(r.stdout, "base\n");
      r = await asUser(["sh", "-c", `echo x > ${view}/etc/hosts`]);
      assert.notEqual(
        r.code,
        0,
        "an image layer is not writable through its view",
      );
      assert.match(r.stderr, /Read-only file system/);
      assert.equal(
        await Deno.readTextFile(`${store}/diff/base/etc/hosts`),
        "base\n",
      );
      r = await cli(["umount", "base"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        (await Deno.readTextFile("/proc/self/mountinfo")).includes(` ${view} `),
        false,
      );
    }),
);

privilegedTest(
  "helper: a read-only layer with parents is viewed with no upper dir through sudo, and stays as applied",
  () =>
    withHelper(async ({ store, cli, asUser }) => {
      const xattrs = async () =>
        (await run([
          "getfattr",
          "-R",
          "-d",
          "-m",
          "-",
          "--absolute-names",
          `${store}/diff/child`,
        ])).stdout;
      const before = await xattrs();
      let r = await cli(["mount", "child"]);
      assert.equal(r.code, 0, r.stderr);
      const view = r.stdout.trim();
      const line = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
        .find((l) => l.split(" ")[4] === view);
      assert.match(line ?? "", / ro,nosuid,nodev[ ,]/);
      assert.match(line ?? "", / - overlay /);
      assert.doesNotMatch(line ?? "", /upperdir=|workdir=/);
      assert.match(line ?? "", new RegExp(`lowerdir\\+=${store}/diff/child,`));
      r = await asUser(["ls", "-AR", view]);
      assert.equal(r.code, 0, r.stderr);
      r = await asUser(["cat", `${view}/etc/motd`, `${view}/etc/hosts`]);
      assert.equal(r.stdout, "child\nbase\n");
      r = await asUser(["sh", "-c", `echo x > ${view}/etc/motd`]);
      assert.match(r.stderr, /Read-only file system/);
      r = await cli(["umount", "child"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        (await Deno.readTextFile("/proc/self/mountinfo")).includes(` ${view} `),
        false,
      );
      // Overlay wrote nothing into the layer (no origin, impure, uuid).
      assert.equal(await xattrs(), before);
    }),
);

privilegedTest(
  "helper: hostile environment variables never reach it through sudo",
  () =>
    withHelper(async ({ t, store, helper, helperBin, asUser, reply }) => {
      // sudo drops them (the helper refuses when it sees one, so success
      // proves they never reached it) and refuses to set them.
      await Deno.writeTextFile(
        `${t}/evil.ts`,
        `Deno.writeTextFileSync("${t}/pwned", "x");`,
      );
      let r = await helper(["mount", store, "ctr"], [
        `DENO_INTERNAL_CHILD_ENTRYPOINT=${t}/evil.ts`,
        "NODE_CHANNEL_FD=0",
        `LD_LIBRARY_PATH=${t}`,
        `LD_PRELOAD=${t}/none.so`,
      ]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.deepEqual(reply(r), {
        ok: true,
        op: "mount",
        target: `${store}/mnt/ctr`,
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
    }),
);

privilegedTest(
  "helper: bad ids, unlisted stores and symlinks anywhere are refused",
  () =>
    withHelper(async (h) => {
      const { t, store, home, asUser, refused, uid, gid } = h;
      const other = `${t}/other`;
      await Deno.mkdir(other);
      await Deno.chown(other, uid, gid);
      await Deno.symlink(store, `${t}/link`);
      await helperInstall({
        group: h.user,
        path: h.helperBin,
        stores: [`${t}/link`],
      });
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
        `rmdir ${store}/mnt/ctr && ln -s ${home} ${store}/mnt/ctr`,
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
      // Something that is not this layer's overlay on mnt/<id> is left alone.
      assert.equal(
        (await run(["mount", "-t", "tmpfs", "none", `${store}/mnt/ctr`])).code,
        0,
      );
      await refused(["umount", store, "ctr"], /not this layer's view/);
      await refused(["mount", store, "ctr"], /already a mount point/);
      assert.equal((await run(["umount", `${store}/mnt/ctr`])).code, 0);
    }),
);

privilegedTest(
  "helper: a config writable by others, or not root's, is refused",
  () =>
    withHelper(async ({ store, helper, refused, uid }) => {
      await Deno.chmod(CONFIG_PATH, 0o666);
      await refused(["mount", store, "ctr"], /writable by others/);
      await Deno.chmod(CONFIG_PATH, 0o664);
      await refused(["mount", store, "ctr"], /writable by its group/);
      await Deno.chmod(CONFIG_PATH, 0o644);
      await Deno.chown(CONFIG_PATH, uid, 0);
      await refused(["mount", store, "ctr"], /owned by uid/);
      await Deno.chown(CONFIG_PATH, 0, 0);
      // And it works again once fixed.
      const r = await helper(["mount", store, "ctr"]);
      assert.equal(r.code, 0, r.stdout);
      assert.equal((await helper(["umount", store, "ctr"])).code, 0);
    }),
);
