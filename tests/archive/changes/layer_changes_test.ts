import { deepEqual } from "node:assert/strict";
import { layerChanges } from "../../../src/archive/changes/layer_changes.ts";
import { layerDiffSize } from "../../../src/archive/changes/layer_size.ts";
import { applyLayerTar } from "../../../src/archive/extract/apply_layer.ts";
import type { Change } from "../../../src/archive/types.ts";
import { privilegedTest, tempDir } from "../../_privileged.ts";
import { tar } from "../extract/_tar.ts";
import { sh } from "./_fixture.ts";

const T = "1700000000";

function list(changes: Change[]): string[] {
  return changes.map((c) => `${c.kind[0].toUpperCase()} ${c.path}`);
}

/** The base tree every scenario starts from (fixed mtimes, whole seconds). */
const BASE =
  `mkdir -p base/etc base/bin base/usr/lib base/usr/share base/opt base/srv/d base/keep \
    base/var/cache base/deep/a/b/c
  echo hosts > base/etc/hosts && echo pw > base/etc/passwd && echo sh > base/bin/sh
  echo a > base/usr/lib/a && echo b > base/usr/share/b && echo x > base/opt/x && echo k > base/keep/k
  echo 1 > base/var/cache/old1 && echo 2 > base/var/cache/old2 && echo f > base/deep/a/b/c/file
  find base -depth -exec touch -h -d @${T} {} +`;

Deno.test("layerChanges vfs: ChangesDirs rules, plus ns mtimes and user.* xattrs", async () => {
  await using d = await tempDir();
  await sh(
    `${BASE}
     cp -a base c
     echo new > c/etc/new
     printf 'HOSTS\\n' > c/etc/hosts && touch -d @${T}.5 c/etc/hosts   # same size, same second
     chmod 700 c/bin/sh
     setfattr -n user.note -v 0x00ff c/usr/lib/a                      # xattr only: mtime unchanged
     rm c/etc/passwd
     rm c/opt/x && mkdir c/opt/x && : > c/opt/x/y                      # file -> dir
     rm -r c/srv && echo s > c/srv                                     # dir -> file`,
    d.path,
  );
  const layer = {
    dir: `${d.path}/c`,
    format: "vfs" as const,
    parentDirs: [`${d.path}/base`],
  };
  deepEqual(list(await layerChanges(layer)), [
    "M /bin",
    "M /bin/sh",
    "M /etc",
    "M /etc/hosts",
    "A /etc/new",
    "D /etc/passwd",
    "M /opt",
    "M /opt/x",
    "A /opt/x/y",
    "M /srv",
    "M /usr",
    "M /usr/lib",
    "M /usr/lib/a",
  ]);
  // hosts (6) + new (4) + sh (3) + a (2) + srv (2); dirs and deletions add nothing.
  deepEqual(await layerDiffSize(layer), 17);
  // Without a parent: everything is an add.
  const all = await layerChanges({ ...layer, parentDirs: [] });
  deepEqual(all.every((c) => c.kind === "add"), true);
  deepEqual(all.length, 25);
});

privilegedTest("layerChanges vfs: chown is a modify", async () => {
  await using d = await tempDir();
  await sh(`${BASE}\n cp -a base c && chown 5:6 c/keep/k`, d.path);
  deepEqual(
    list(
      await layerChanges({
        dir: `${d.path}/c`,
        format: "vfs",
        parentDirs: [`${d.path}/base`],
      }),
    ),
    ["M /keep", "M /keep/k"],
  );
});

privilegedTest(
  "layerChanges overlay: a real overlay mount (whiteouts, opaque dir, file<->dir, copy-ups)",
  async () => {
    await using d = await tempDir();
    await sh(
      `${BASE}
     mkdir up work mnt
     mount -t overlay overlay -o lowerdir=base,upperdir=up,workdir=work mnt
     cd mnt
     echo new > etc/new
     printf 'HOSTS\\n' > etc/hosts && touch -d @${T}.5 etc/hosts
     chmod 700 bin/sh
     chown 5:5 usr/lib/a
     setfattr -n user.note -v 0x00ff usr/share/b
     rm etc/passwd
     rm -r srv && echo s > srv
     rm opt/x && mkdir opt/x && : > opt/x/y
     rm -r var/cache && mkdir var/cache && echo n > var/cache/new
     echo g > deep/a/b/c/file
     cd .. && umount mnt`,
      d.path,
    );
    const layer = {
      dir: `${d.path}/up`,
      format: "overlay" as const,
      parentDirs: [`${d.path}/base`],
    };
    deepEqual(list(await layerChanges(layer)), [
      "M /bin/sh",
      "M /deep/a/b/c/file",
      "M /etc",
      "M /etc/hosts",
      "A /etc/new",
      "D /etc/passwd",
      "M /opt",
      "M /opt/x",
      "A /opt/x/y",
      "M /srv",
      "M /usr/lib/a",
      "M /usr/share/b",
      "M /var",
      "M /var/cache",
      "A /var/cache/new",
      "D /var/cache/old1",
      "D /var/cache/old2",
    ]);
    // Upper files: hosts 6, new 4, sh 3, a 2, b 2, srv 2, y 0, new 2, file 2.
    deepEqual(await layerDiffSize(layer), 23);
  },
);

privilegedTest(
  "layerChanges overlay: lookups across parents honour whiteouts and opaque dirs of nearer parents",
  async () => {
    await using d = await tempDir();
    await sh(
      `mkdir -p p1/d p2/d up/d
     echo x > p1/x && echo o > p1/d/old && echo p > p2/d/p2
     mknod p2/x c 0 0 && setfattr -n trusted.overlay.opaque -v y p2/d
     echo X > up/x && echo O > up/d/old && echo P > up/d/p2
     touch -d @${T} p1/d p2/d up/d`,
      d.path,
    );
    deepEqual(
      list(
        await layerChanges({
          dir: `${d.path}/up`,
          format: "overlay",
          parentDirs: [`${d.path}/p2`, `${d.path}/p1`],
        }),
      ),
      ["M /d", "A /d/old", "M /d/p2", "A /x"],
    );
  },
);

Deno.test("layerChanges aufs: .wh. deletes, .wh..wh..opq hides lower entries, internals skipped, file->dir works", async () => {
  await using d = await tempDir();
  await sh(
    `mkdir -p low/dir low/same up/.wh..wh.plnk up/dir up/f up/same
     echo o > low/dir/old && echo f > low/f && echo g > low/gone && echo s > low/same/s
     : > up/.wh..wh.aufs && echo p > up/.wh..wh.plnk/1.2 && ln up/.wh..wh.aufs up/.wh.gone
     : > up/dir/.wh..wh..opq && echo n > up/dir/new && echo c > up/f/c && echo S > up/same/s
     touch -d @${T} low/dir low/same up/dir up/same`,
    d.path,
  );
  const layer = {
    dir: `${d.path}/up`,
    format: "aufs" as const,
    parentDirs: [`${d.path}/low`],
  };
  deepEqual(list(await layerChanges(layer)), [
    "M /dir",
    "A /dir/new",
    "D /dir/old",
    "M /f",
    "A /f/c",
    "D /gone",
    "M /same/s",
  ]);
  // dir/new 2 + f/c 2 + same/s 2; the whiteout base and pseudo-links are not content.
  deepEqual(await layerDiffSize(layer), 6);
});

privilegedTest(
  "layerDiffSize overlay: regular files only, hardlinks once",
  async () => {
    await using d = await tempDir();
    await sh(
      `mkdir -p up/d && head -c 1000 /dev/zero > up/d/big && ln up/d/big up/link
     printf 0123456789 > up/ten && mknod up/wh c 0 0 && ln -s big up/d/sym && mkfifo up/fifo`,
      d.path,
    );
    deepEqual(
      await layerDiffSize({
        dir: `${d.path}/up`,
        format: "overlay",
        parentDirs: [],
      }),
      1010,
    );
  },
);

/**
 * Whiteouts of paths no parent shows: never there (`/etc/does-not-exist`,
 * `/nodir/y`), hidden by a nearer parent's whiteout (`/x`) or opaque dir
 * (`/d/old`). They delete nothing, so they are no changes (moby, continuity
 * and the two-tree path agree); the real deletes next to them still are.
 */
const NOT_DELETED = [
  "M /d",
  "D /d/p2",
  "M /etc",
  "D /etc/passwd",
  "A /nodir",
];

privilegedTest(
  "layerChanges overlay: a whiteout is a delete only when a parent has the path (real mount)",
  async () => {
    await using d = await tempDir();
    // p1 (farther): x, d/old, etc/*; p2 (nearer): whites out x, makes d opaque.
    await sh(
      `mkdir -p p1/d p1/etc p2/d up work mnt
     echo x > p1/x && echo o > p1/d/old && echo pw > p1/etc/passwd && echo h > p1/etc/hosts
     mknod p2/x c 0 0 && setfattr -n trusted.overlay.opaque -v y p2/d && echo p > p2/d/p2`,
      d.path,
    );
    await applyLayerTar(
      { dir: `${d.path}/up`, format: "overlay", parentDirs: [] },
      tar([
        { name: "etc/.wh.passwd", body: "" },
        { name: "etc/.wh.does-not-exist", body: "" },
        { name: ".wh.x", body: "" },
        { name: "d/.wh.old", body: "" },
        { name: "d/.wh.p2", body: "" },
        { name: "nodir/.wh.y", body: "" },
      ]),
    );
    // The union view the changes describe: of the whited-out paths only
    // passwd and d/p2 were there to go away. (Looked up by name: overlayfs
    // lists a whiteout in a dir no lower has, nodir/, but a lookup hides it.)
    const view = await sh(
      `mount -t overlay overlay -o lowerdir=p2:p1,upperdir=up,workdir=work mnt
     trap 'umount mnt' EXIT
     for p in etc/hosts etc/passwd etc/does-not-exist x d d/old d/p2 nodir nodir/y; do
       if [ -e "mnt/$p" ]; then echo "$p"; fi
     done`,
      d.path,
    );
    deepEqual(view.trim().split("\n"), ["etc/hosts", "d", "nodir"]);
    deepEqual(
      list(
        await layerChanges({
          dir: `${d.path}/up`,
          format: "overlay",
          parentDirs: [`${d.path}/p2`, `${d.path}/p1`],
        }),
      ),
      NOT_DELETED,
    );
  },
);

Deno.test("layerChanges aufs: a whiteout is a delete only when a parent has the path", async () => {
  await using d = await tempDir();
  await sh(
    `mkdir -p p1/d p1/etc p2/d up/d up/etc up/nodir
     echo x > p1/x && echo o > p1/d/old && echo pw > p1/etc/passwd && echo h > p1/etc/hosts
     : > p2/.wh.x && : > p2/d/.wh..wh..opq && echo p > p2/d/p2
     : > up/etc/.wh.passwd && : > up/etc/.wh.does-not-exist && : > up/.wh.x
     : > up/d/.wh.old && : > up/d/.wh.p2 && : > up/nodir/.wh.y
     : > up/.wh.z && echo z > up/z`,
    d.path,
  );
  deepEqual(
    list(
      await layerChanges({
        dir: `${d.path}/up`,
        format: "aufs",
        parentDirs: [`${d.path}/p2`, `${d.path}/p1`],
      }),
    ),
    // z: whited out and re-created, but no parent had it: an add.
    [...NOT_DELETED, "A /z"],
  );
});
