/**
 * Hardening found in review: recursive deletes never cross into mounts, and
 * the fd-relative removers refuse names that would climb out of their dir.
 */
import assert from "node:assert/strict";
import { openStore, StoreError } from "../../mod.ts";
import { emptyDirAt, removeAllAt } from "../../src/sys/fs_at_linux.ts";
import { close, O, openat } from "../../src/sys/fd_linux.ts";
import { cstr, SysError } from "../../src/sys/libc_linux.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";

privilegedTest(
  "remove refuses to delete through a mount inside a vfs layer",
  async () => {
    await using tmp = await tempDir();
    const volume = `${tmp.path}/volume`;
    await Deno.mkdir(volume);
    await Deno.writeTextFile(`${volume}/canary`, "host data\n");
    const store = await openStore({
      root: `${tmp.path}/store`,
      backend: "vfs",
    });
    try {
      await store.createReadWrite("ctr");
      const rootfs = await store.get("ctr");
      await Deno.mkdir(`${rootfs}/data`);
      // What a container runtime does with a vfs rootfs: bind a host volume in.
      const bind = await new Deno.Command("mount", {
        args: ["--bind", volume, `${rootfs}/data`],
      }).output();
      assert.ok(bind.success);
      await store.put("ctr");
      await assert.rejects(store.remove("ctr", { force: true }), StoreError);
      assert.equal(await Deno.readTextFile(`${volume}/canary`), "host data\n");
      assert.equal(
        await store.exists("ctr"),
        true,
        "a refused remove changes nothing",
      );
      await new Deno.Command("umount", { args: [`${rootfs}/data`] }).output();
      await store.remove("ctr");
      assert.equal(await store.exists("ctr"), false);
      assert.equal(await Deno.readTextFile(`${volume}/canary`), "host data\n");
    } finally {
      store.close();
    }
  },
);

Deno.test("removeAllAt/emptyDirAt refuse '.', '..', '/' and NUL in a name", async () => {
  await using tmp = await tempDir();
  await Deno.mkdir(`${tmp.path}/parent/child`, { recursive: true });
  await Deno.writeTextFile(`${tmp.path}/parent/canary`, "keep\n");
  const fd = openat(-100, `${tmp.path}/parent/child`, O.RDONLY | O.DIRECTORY);
  try {
    const nul = new Uint8Array([0x2e, 0x2e, 0, 0x78, 0]); // "..\0x"
    for (const bad of ["..", ".", "", "a/b", nul]) {
      assert.throws(() => removeAllAt(fd, bad), SysError, String(bad));
      assert.throws(() => emptyDirAt(fd, bad), SysError, String(bad));
    }
  } finally {
    close(fd);
  }
  assert.equal(await Deno.readTextFile(`${tmp.path}/parent/canary`), "keep\n");
  assert.throws(() => cstr("a\0b"), SysError);
});
