import assert from "node:assert/strict";
import {
  openDirAt,
  openFileAt,
  readXattrsAt,
  readXattrsFd,
} from "../../src/sys/fs_walk_linux.ts";
import { AT_FDCWD, close } from "../../src/sys/fd_linux.ts";

Deno.test("xattr readers: an entry without xattrs gives an empty map that refuses changes; one with xattrs gives its own", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/plain`, "x");
    await Deno.writeTextFile(`${dir}/tagged`, "y");
    // setfattr (attr) may be missing outside CI: then only the empty case runs.
    let tagged = false;
    try {
      tagged = new Deno.Command("setfattr", {
        args: ["-n", "user.k", "-v", "v", `${dir}/tagged`],
        stderr: "null",
      }).outputSync().success;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const dfd = openDirAt(AT_FDCWD, dir);
    const fd = openFileAt(dfd, "plain");
    try {
      for (const empty of [readXattrsFd(fd), readXattrsAt(dfd, "plain")]) {
        assert.equal(empty.size, 0);
        assert.throws(() => empty.set("user.x", new Uint8Array()), TypeError);
        assert.throws(() => empty.delete("user.x"), TypeError);
        assert.throws(() => empty.clear(), TypeError);
        assert.equal(empty.size, 0);
      }
      if (tagged) {
        // Where the file system takes user xattrs (not tmpfs before 6.6).
        const got = readXattrsAt(dfd, "tagged");
        assert.deepEqual([...got.keys()], ["user.k"]);
        got.set("user.extra", new Uint8Array([1]));
        assert.equal(readXattrsFd(fd).size, 0);
      }
    } finally {
      close(fd);
      close(dfd);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
