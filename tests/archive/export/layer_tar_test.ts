import { deepEqual, ok, rejects } from "node:assert/strict";
import { layerTar } from "../../../src/archive/export/layer_tar.ts";
import { StoreError } from "../../../src/errors.ts";
import { privilegedTest, tempDir } from "../../_privileged.ts";
import { collect, gnuList, gnuNames, save, sh } from "../changes/_fixture.ts";

const T = "1700000000.5";
const TS = "2023-11-14 22:13:20.5";

privilegedTest(
  "layerTar overlay: 0/0 char devices become .wh. files, opaque dirs get .wh..wh..opq, overlay xattrs dropped",
  async () => {
    await using d = await tempDir();
    await sh(
      `mkdir -p up/etc up/opq/keep && cd up
     mknod etc/gone c 0 0 && chown 7:8 etc/gone
     ln etc/gone etc/gone2          # overlay (5.8+) shares one whiteout inode
     mknod tty c 5 0
     echo k > opq/keep/f
     setfattr -n trusted.overlay.opaque -v y opq
     setfattr -n trusted.overlay.origin -v 0x0102 etc
     setfattr -n user.overlay.impure -v y etc
     setfattr -n trusted.keep -v 0x00ff etc
     chown 3:4 opq && chmod 0750 opq
     touch -h -d @${T} etc/gone etc/gone2 tty opq/keep/f opq/keep opq etc`,
      d.path,
    );
    const tar = await save(
      `${d.path}/o.tar`,
      await collect(
        layerTar({ dir: `${d.path}/up`, format: "overlay", parentDirs: [] }),
      ),
    );
    deepEqual(await gnuList(tar), [
      `drwxr-xr-x* 0/0 0 ${TS} etc/`,
      `x: 2 trusted.keep`,
      `-rw------- 7/8 0 ${TS} etc/.wh.gone`,
      `-rw------- 7/8 0 ${TS} etc/.wh.gone2`,
      `drwxr-x--- 3/4 0 ${TS} opq/`,
      `-rwxr-x--- 3/4 0 ${TS} opq/.wh..wh..opq`,
      `drwxr-xr-x 0/0 0 ${TS} opq/keep/`,
      `-rw-r--r-- 0/0 2 ${TS} opq/keep/f`,
      `crw-r--r-- 0/0 5,0 ${TS} tty`,
    ]);
  },
);

privilegedTest(
  "layerTar overlay: a real overlay mount's upper dir (delete file and dir, recreate a removed dir)",
  async () => {
    await using d = await tempDir();
    await sh(
      `mkdir -p low/a/sub low/b up work mnt && echo 1 > low/a/sub/x && echo 2 > low/b/y && echo 3 > low/z
     mount -t overlay overlay -o lowerdir=low,upperdir=up,workdir=work mnt
     rm mnt/z && rm -r mnt/b && rm -r mnt/a && mkdir mnt/a && echo new > mnt/a/n
     umount mnt`,
      d.path,
    );
    const tar = await save(
      `${d.path}/o.tar`,
      await collect(
        layerTar({
          dir: `${d.path}/up`,
          format: "overlay",
          parentDirs: [`${d.path}/low`],
        }),
      ),
    );
    deepEqual(await gnuNames(tar), [
      ".wh.b",
      ".wh.z",
      "a/",
      "a/.wh..wh..opq",
      "a/n",
    ]);
  },
);

privilegedTest(
  "layerTar aufs: .wh. files pass through, aufs internals never appear, hardlinked whiteouts stay plain files",
  async () => {
    await using d = await tempDir();
    await sh(
      `mkdir -p up/.wh..wh.plnk up/dir && cd up
     : > .wh..wh.aufs && ln .wh..wh.aufs .wh.gone && ln .wh..wh.aufs dir/.wh.x
     echo p > .wh..wh.plnk/123.456 && : > dir/.wh..wh..opq && echo f > dir/f`,
      d.path,
    );
    const tar = await save(
      `${d.path}/o.tar`,
      await collect(
        layerTar({ dir: `${d.path}/up`, format: "aufs", parentDirs: [] }),
      ),
    );
    deepEqual(await gnuNames(tar), [
      ".wh.gone",
      "dir/",
      "dir/.wh..wh..opq",
      "dir/.wh.x",
      "dir/f",
    ]);
    const list = await gnuList(tar);
    ok(list.every((l) => !l.startsWith("h")), list.join("\n"));
  },
);

Deno.test("layerTar vfs: only changed entries, deletions as .wh., changed dirs' parents included", async () => {
  await using d = await tempDir();
  await sh(
    `mkdir -p p/etc p/usr/lib p/gone p/keep && echo h > p/etc/hosts && echo pw > p/etc/passwd
     echo a > p/usr/lib/a && echo k > p/keep/k && echo g > p/gone/g
     touch -h -d @${T} p/etc/hosts p/etc/passwd p/usr/lib/a p/usr/lib p/usr p/keep/k p/keep p/gone/g p/gone p/etc
     cp -a p c
     rm -r c/gone && rm c/etc/passwd && echo new > c/usr/lib/b && printf 'H\\n' > c/etc/hosts && touch -d @${T} c/etc/hosts`,
    d.path,
  );
  const layer = {
    dir: `${d.path}/c`,
    format: "vfs" as const,
    parentDirs: [`${d.path}/p`],
  };
  const bytes = await collect(layerTar(layer));
  const tar = await save(`${d.path}/o.tar`, bytes);
  deepEqual(await gnuNames(tar), [
    ".wh.gone",
    "etc/",
    "etc/.wh.passwd",
    "usr/",
    "usr/lib/",
    "usr/lib/b",
  ]);
  // The hosts rewrite kept size and mtime: moby's ChangesDirs misses it too.
  const again = await collect(layerTar(layer));
  deepEqual(again, bytes);
  // Without a parent, everything.
  const all = await save(
    `${d.path}/all.tar`,
    await collect(layerTar({ ...layer, parentDirs: [] })),
  );
  deepEqual(await gnuNames(all), [
    "etc/",
    "etc/hosts",
    "keep/",
    "keep/k",
    "usr/",
    "usr/lib/",
    "usr/lib/a",
    "usr/lib/b",
  ]);
});

privilegedTest(
  "layerTar overlay: redirect_dir/metacopy layers are refused with a clear error",
  async () => {
    await using d = await tempDir();
    await sh(
      `mkdir -p up/moved && setfattr -n trusted.overlay.redirect -v /orig up/moved`,
      d.path,
    );
    await rejects(
      collect(
        layerTar({ dir: `${d.path}/up`, format: "overlay", parentDirs: [] }),
      ),
      (e: unknown) => e instanceof StoreError && /redirect_dir/.test(e.message),
    );
  },
);
