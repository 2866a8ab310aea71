/**
 * apply(diff(x)) gives x exactly: content, types, modes, owners, xattrs
 * (binary values), hardlinks, nanosecond mtimes, whiteouts and opaque dirs,
 * for the overlay and vfs formats.
 */
import { deepEqual, ok } from "node:assert/strict";
import { layerTar } from "../../src/archive/export/layer_tar.ts";
import { applyLayerTar } from "../../src/archive/extract/apply_layer.ts";
import { close, read } from "../../src/sys/fd_linux.ts";
import {
  openDirAt,
  openFileAt,
  readDirFd,
  readlinkAt,
  readXattrsAt,
  statxAt,
} from "../../src/sys/fs_walk_linux.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { sh } from "./changes/_fixture.ts";

/** Every entry below `root` as comparable text (whiteouts: kind and rdev only). */
function describe(root: string): string[] {
  const out: string[] = [];
  const links = new Map<bigint, string>();
  const walk = (fd: number, rel: string) => {
    const names = readDirFd(fd).map((e) => e.name!).sort();
    for (const name of names) {
      const p = `${rel}/${name}`;
      const st = statxAt(fd, name);
      if (st.kind === "char" && st.rdevMajor === 0 && st.rdevMinor === 0) {
        out.push(`${p} whiteout`);
        continue;
      }
      const x = [...readXattrsAt(fd, name)].sort(([a], [b]) => a < b ? -1 : 1)
        .map(([k, v]) => `${k}=${[...v].join(",")}`).join(" ");
      let body = "";
      if (st.kind === "file") {
        const f = openFileAt(fd, name);
        try {
          const buf = new Uint8Array(st.size);
          let n = 0;
          while (n < st.size) {
            const r = read(f, buf.subarray(n));
            if (!r) break;
            n += r;
          }
          body = String(buf.reduce((h, b) => (h * 31 + b) >>> 0, 7));
        } finally {
          close(f);
        }
      }
      if (st.kind === "symlink") {
        body = new TextDecoder().decode(readlinkAt(fd, name));
      }
      let link = "";
      if (st.kind !== "dir" && st.nlink > 1) {
        link = links.get(st.ino) ?? "";
        if (!link) links.set(st.ino, p);
      }
      out.push(
        `${p} ${st.kind} ${
          (st.mode & 0o7777).toString(8)
        } ${st.uid}:${st.gid} ${st.size * +(st.kind === "file")} ` +
          `${st.mtimeSec}.${st.mtimeNsec} ${st.rdevMajor},${st.rdevMinor} [${x}] ${body} ${
            link && "=" + link
          }`,
      );
      if (st.kind === "dir") {
        const sub = openDirAt(fd, name);
        try {
          walk(sub, p);
        } finally {
          close(sub);
        }
      }
    }
  };
  const fd = openDirAt(-100, root);
  try {
    walk(fd, "");
  } finally {
    close(fd);
  }
  return out;
}

const T = "1700000000";

/** Every kind of entry, owners, setuid, binary xattrs, ns mtimes. */
const RICH = `mkdir -p d/sub e
  printf 'hello\\n' > d/f && head -c 3000000 /dev/urandom > big && ln d/f d/hard && ln d/f e/hard2
  ln -s ../big d/sym && ln -s /abs/target e/abs
  mknod chr c 1 3 && mknod blk b 7 0 && mkfifo fifo
  : > suid && chmod 4755 suid && chown 1234:5678 d/f && chown -h 42:43 d/sym
  setfattr -n user.bin -v 0x00ff00fe d/f && setfattr -n trusted.t -v 0x01 e && setfattr -n security.capability -v 0x0100000200000000000000000000000000000000 big
  setfattr -h -n trusted.onlink -v 0x02 d/sym
  touch -h -d @${T}.111111111 d/f d/sym e/abs big chr blk fifo suid
  touch -h -d @${T}.222222222 d/sub d e`;

privilegedTest(
  "round trip overlay: applyLayerTar(layerTar(x)) == x",
  async () => {
    await using d = await tempDir();
    await sh(
      `mkdir x y && cd x && ${RICH}
     mknod gone c 0 0 && mkdir -p opq/in && echo i > opq/in/f && setfattr -n trusted.overlay.opaque -v y opq
     touch -h -d @${T}.333333333 opq/in/f opq/in opq`,
      d.path,
    );
    const x = `${d.path}/x`;
    await applyLayerTar(
      { dir: `${d.path}/y`, format: "overlay", parentDirs: [] },
      layerTar({ dir: x, format: "overlay", parentDirs: [] }),
    );
    const want = describe(x);
    // The description really covers what matters.
    for (
      const needle of [
        "/gone whiteout",
        "=/d/f",
        "user.bin=0,255,0,254",
        "trusted.overlay.opaque=121",
        "/chr char 644 0:0 0 1700000000.111111111 1,3",
      ]
    ) {
      ok(
        want.some((l) => l.includes(needle)),
        `${needle} in\n${want.join("\n")}`,
      );
    }
    deepEqual(describe(`${d.path}/y`), want);
  },
);

privilegedTest(
  "round trip vfs: applying the diff to a copy of the parent gives the child",
  async () => {
    await using d = await tempDir();
    await sh(
      `mkdir p && cd p && ${RICH}
     mkdir -p gone/deep rm kept && echo g > gone/deep/g && echo r > rm/r && echo k > kept/k && echo f > tofile
     mkdir todir && echo z > todir/z && echo h > hl && ln hl hl2
     find . -depth -exec touch -h -d @${T}.5 {} +
     cd .. && cp -a p c && cd c
     rm -r gone && rm rm/r && rm tofile && mkdir tofile && echo n > tofile/n
     rm -r todir && echo file > todir && echo new > d/new && ln d/new d/new2
     setfattr -n user.only -v 0x00 kept/k && chmod 600 d/sub && chown 7:7 big
     printf 'HELLO\\n' > d/f && touch -d @${T}.999 d/f
     touch -h -d @${T}.444444444 tofile/n tofile todir d/new rm d kept`,
      d.path,
    );
    await sh(`cp -a p y`, d.path);
    const c = `${d.path}/c`;
    await applyLayerTar(
      { dir: `${d.path}/y`, format: "vfs", parentDirs: [`${d.path}/p`] },
      layerTar({ dir: c, format: "vfs", parentDirs: [`${d.path}/p`] }),
    );
    const want = describe(c);
    for (
      const needle of ["/tofile/n", "=/d/new", "user.only=0", "/todir file"]
    ) {
      ok(
        want.some((l) => l.includes(needle)),
        `${needle} in\n${want.join("\n")}`,
      );
    }
    deepEqual(describe(`${d.path}/y`), want);
  },
);
