/**
 * `layerfs helper install` and `doctor`: what they refuse and report, and
 * that install writes nothing until every prerequisite is there.
 */
import assert from "node:assert/strict";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { CONFIG_PATH } from "../../helper/config.ts";
import {
  helperDoctor,
  helperInstall,
  SUDOERS_PATH,
} from "../../helper/install.ts";
import { HelperError } from "../../src/errors.ts";
import { lockSerial, run, save, withHelper } from "./_fixture.ts";

privilegedTest(
  "helper doctor: flags setuid and file capabilities, explains",
  async () => {
    await using tmp = await tempDir();
    await Deno.chmod(tmp.path, 0o755);
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
    // /tmp is sticky: others cannot replace root's entries in it.
    assert.equal(
      again.checks.find((c) => /every directory above it/.test(c.message))?.ok,
      true,
    );
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

privilegedTest(
  "helper attack 4: a helper in a user-writable dir fails doctor, is refused by install, and gives no root through sudo",
  () =>
    withHelper(async ({ t, home, user, asUser }) => {
      // Root's own binary, but in a directory the user owns.
      const bin = `${home}/bin/layerfs-helper`;
      await asUser(["mkdir", `${home}/bin`]);
      await Deno.writeTextFile(bin, "#!/bin/sh\necho helper\n");
      await Deno.chmod(bin, 0o755);
      const doctor = await helperDoctor({ path: bin });
      const dirs = doctor.checks.find((c) =>
        /get root through sudo/.test(c.message)
      );
      assert.ok(dirs, JSON.stringify(doctor.checks));
      assert.equal(dirs.ok, false);
      assert.match(dirs.message, new RegExp(`${home} is owned by uid`));
      assert.equal(doctor.ok, false);

      const sudoersBefore = await Deno.readTextFile(SUDOERS_PATH);
      const configBefore = await Deno.readTextFile(CONFIG_PATH);
      const installed = await helperInstall({ group: user, path: bin }).then(
        () => undefined,
        (e) => e,
      );
      // The attack: the user swaps the binary (its dir, its right) and runs
      // it through the sudoers rule install would have written.
      await asUser([
        "sh",
        "-c",
        `printf '#!/bin/sh\\nid -u > ${home}/whoami\\n' > ${home}/bin/new && chmod 755 ${home}/bin/new && mv -f ${home}/bin/new ${bin}`,
      ]);
      await asUser(["sudo", "-n", bin]);
      const who = await Deno.readTextFile(`${home}/whoami`).catch(() => "");
      assert.notEqual(who.trim(), "0", "the user ran its own file as root");
      assert.ok(installed instanceof HelperError, String(installed));
      assert.match(
        installed.message,
        new RegExp(`Refusing helper path ${bin}: ${home} is owned by uid`),
      );
      assert.equal(await Deno.readTextFile(SUDOERS_PATH), sudoersBefore);
      assert.equal(await Deno.readTextFile(CONFIG_PATH), configBefore);
      // A path below a symlink is refused as well.
      await Deno.symlink(t, `${t}/linkdir`);
      await assert.rejects(
        helperInstall({ group: user, path: `${t}/linkdir/layerfs-helper` }),
        /symlinks \(ELOOP\)/,
      );
    }),
);

privilegedTest(
  "helper install: a missing visudo or groupadd is named with its Debian package before anything is written",
  async () => {
    using _serial = await lockSerial();
    await using tmp = await tempDir();
    await Deno.chmod(tmp.path, 0o755);
    const restore = [await save(CONFIG_PATH), await save(SUDOERS_PATH)];
    const etcBefore = await Deno.stat("/etc/layerfs").then(
      () => true,
      () => false,
    );
    const sudoersDir = () =>
      [...Deno.readDirSync("/etc/sudoers.d")].map((e) => e.name).sort();
    const before = sudoersDir();
    try {
      const config = await Deno.readTextFile(CONFIG_PATH).catch(() => null);
      await assert.rejects(
        helperInstall({
          group: "layerfs-no-such-group",
          path: `${tmp.path}/layerfs-helper`,
          stores: ["/srv/x"],
          searchPath: tmp.path,
        }),
        (e: Error) => {
          assert.ok(e instanceof HelperError);
          assert.match(e.message, /needs visudo.*apt-get install sudo/);
          return true;
        },
      );
      // visudo found, groupadd not: the group would be created, so it is named.
      await Deno.symlink("/usr/sbin/visudo", `${tmp.path}/visudo`);
      await assert.rejects(
        helperInstall({
          group: "layerfs-no-such-group",
          path: `${tmp.path}/layerfs-helper`,
          searchPath: tmp.path,
        }),
        /needs groupadd.*apt-get install passwd/,
      );
      assert.deepEqual(sudoersDir(), before, "no temp file in sudoers.d");
      assert.equal(
        await Deno.readTextFile(CONFIG_PATH).catch(() => null),
        config,
      );
      assert.equal(
        await Deno.stat("/etc/layerfs").then(() => true, () => false),
        etcBefore,
      );
      assert.equal(
        (await run(["getent", "group", "layerfs-no-such-group"])).code,
        2,
      );
    } finally {
      for (const r of restore) await r();
    }
  },
);
