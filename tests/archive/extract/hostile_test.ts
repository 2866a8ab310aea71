/**
 * Hostile archives: each technique tries to write, chmod, chown or time a
 * canary outside the layer directory. The canary must come out byte-, mode-,
 * owner- and mtime-identical, and the result must be the documented one (an
 * InvalidArchive naming the entry, or the entry placed inside the layer).
 */
import assert from "node:assert/strict";
import { applyTar } from "../../../src/archive/extract/apply_tar.ts";
import type { ExtractFormat } from "../../../src/archive/types.ts";
import { InvalidArchive } from "../../../src/errors.ts";
import { openStore } from "../../../mod.ts";
import { privilegedTest, tempDir } from "../../_privileged.ts";
import { type E, statAt, tar, xattrs } from "./_tar.ts";

interface World {
  /** The layer directory being extracted into. */
  layer: string;
  /** A directory outside the layer. */
  outside: string;
  /** A file in it. */
  canary: string;
}

function snapshot(w: World) {
  const st = statAt(w.canary);
  const dst = statAt(w.outside);
  return {
    bytes: [...Deno.readFileSync(w.canary)],
    canary: [
      st.mode,
      st.uid,
      st.gid,
      st.mtimeSec,
      st.mtimeNsec,
      st.nlink,
      st.ino,
    ],
    dir: [dst.mode, dst.uid, dst.gid, dst.mtimeSec, dst.mtimeNsec],
    list: [...Deno.readDirSync(w.outside)].map((e) => e.name).sort(),
  };
}

/**
 * Runs `entries` against a fresh world; `prepare` may plant things in the
 * layer first. `expect` is "ok", "InvalidArchive", or the InvalidArchive
 * expected: the entry it must name and a pattern of its message.
 */
async function hostile(
  entries: (w: World) => E[],
  expect: "InvalidArchive" | "ok" | { entry: string; message: RegExp },
  check?: (w: World) => void | Promise<void>,
  opts: { format?: ExtractFormat; prepare?: (w: World) => void } = {},
): Promise<void> {
  await using d = await tempDir();
  const w: World = {
    layer: `${d.path}/layer`,
    outside: `${d.path}/outside`,
    canary: `${d.path}/outside/canary`,
  };
  Deno.mkdirSync(w.layer);
  Deno.mkdirSync(w.outside, { mode: 0o755 });
  Deno.writeTextFileSync(w.canary, "precious");
  Deno.chmodSync(w.canary, 0o640);
  Deno.chownSync(w.canary, 4321, 4322);
  Deno.utimeSync(w.canary, 1_000_000_000, 1_000_000_000);
  Deno.utimeSync(w.outside, 1_000_000_000, 1_000_000_000);
  opts.prepare?.(w);
  const before = snapshot(w);
  let err: unknown;
  try {
    await applyTar(w.layer, tar(entries(w)), { format: opts.format ?? "vfs" });
  } catch (e) {
    err = e;
  }
  assert.deepEqual(snapshot(w), before, "the canary outside the layer changed");
  if (expect !== "ok") {
    assert.ok(
      err instanceof InvalidArchive,
      `expected InvalidArchive, got ${err}`,
    );
    if (expect !== "InvalidArchive") {
      assert.equal(err.entry, expect.entry);
      assert.match(err.message, expect.message);
    }
  } else {
    assert.equal(err, undefined, `unexpected error: ${err}`);
  }
  await check?.(w);
}

const evil = { body: "pwned", mode: 0o4777, uid: 0, gid: 0, mtime: 42 };
const read = (p: string) => Deno.readTextFileSync(p);
const isLink = (p: string) => (statAt(p).mode & 0o170000) === 0o120000;

const climbs = /climbs above the layer root/;
/** Names of what is in the layer directory. */
const inLayer = (w: World) => [...Deno.readDirSync(w.layer)].map((e) => e.name);

privilegedTest(
  "hostile: ../ traversal is refused, not clamped into the layer",
  async () => {
    for (const name of ["../outside/canary", "a/../../../outside/canary2"]) {
      await hostile(
        () => [{ name, ...evil }],
        { entry: name, message: climbs },
        (w) => assert.deepEqual(inLayer(w), []),
      );
    }
    // ".." that stays inside is only lexical: a/../b is b.
    await hostile(
      () => [{ name: "a/../b", body: "b" }],
      "ok",
      (w) => assert.equal(read(`${w.layer}/b`), "b"),
    );
  },
);

privilegedTest(
  "hostile: absolute names are taken relative to the layer",
  async () => {
    await hostile(
      (
        w,
      ) => [{ name: w.canary, ...evil }, {
        name: `${w.outside}/`,
        type: "dir",
        mode: 0o777,
        mtime: 5,
      }],
      "ok",
      (w) => {
        assert.equal(read(`${w.layer}${w.canary}`), "pwned");
        assert.equal(statAt(`${w.layer}${w.outside}`).mode, 0o040777);
      },
    );
  },
);

privilegedTest(
  "hostile: symlink to outside, then a file through it",
  async () => {
    await hostile((w) => [
      { name: "esc", type: "symlink", linkname: w.outside },
      { name: "esc/canary", ...evil },
    ], "InvalidArchive");
    await hostile(() => [
      { name: "esc", type: "symlink", linkname: "../outside" },
      { name: "esc/canary", ...evil },
    ], "InvalidArchive");
  },
);

privilegedTest(
  "hostile: symlink to an outside file, then write and chmod the same name",
  async () => {
    await hostile(
      (w) => [
        { name: "lnk", type: "symlink", linkname: w.canary },
        { name: "lnk", ...evil },
        { name: "lnk2", type: "symlink", linkname: "../outside/canary" },
        { name: "lnk2", type: "dir", mode: 0o777 },
      ],
      "ok",
      (w) => {
        assert.equal(read(`${w.layer}/lnk`), "pwned");
        assert.equal(statAt(`${w.layer}/lnk2`).mode, 0o040777);
      },
    );
  },
);

privilegedTest(
  "hostile: an absolute symlink parent counts from the layer root",
  async () => {
    await hostile(
      (w) => [
        { name: `${w.outside.slice(1)}/`, type: "dir" }, // layer/<outside path> exists inside
        { name: "p", type: "symlink", linkname: w.outside },
        { name: "p/canary", ...evil, body: "p" },
      ],
      "ok",
      (w) => assert.equal(read(`${w.layer}${w.outside}/canary`), "p"),
    );
  },
);

privilegedTest(
  "hostile: writing through a symlink whose target climbs out of the layer is refused",
  async () => {
    const leads = /reached through the symlink .* which leads out of the layer/;
    for (
      const [entries, entry] of [
        [[
          { name: "esc", type: "symlink", linkname: "../outside" },
          { name: "esc/canary", ...evil },
        ], "esc/canary"],
        // A chain: the escape is in the second link.
        [[
          { name: "b", type: "symlink", linkname: "sub/../../outside" },
          { name: "a", type: "symlink", linkname: "b" },
          { name: "a/new/", type: "dir", mode: 0o777 },
        ], "a/new/"],
        // Through an in-layer dir reached by another link, then "..".
        [[
          { name: "d/", type: "dir" },
          { name: "l", type: "symlink", linkname: "d/../.." },
          { name: "l/outside/x", ...evil },
        ], "l/outside/x"],
        // Hard links are placed by the same resolver.
        [[
          { name: "f", body: "f" },
          { name: "esc", type: "symlink", linkname: "../outside" },
          { name: "esc/h", type: "hardlink", linkname: "f" },
        ], "esc/h"],
        // Nodes and FIFOs too.
        [[
          { name: "esc", type: "symlink", linkname: "../outside" },
          { name: "esc/fifo", type: "fifo" },
        ], "esc/fifo"],
      ] as [E[], string][]
    ) {
      await hostile(() => entries, { entry, message: leads });
    }
  },
);

privilegedTest(
  "hostile: a symlink parent that climbs out is refused, not clamped to the layer root",
  async () => {
    // With RESOLVE_IN_ROOT alone "q/<outside>/canary" landed in
    // layer/<outside>/canary: contained, but the archive was accepted.
    await using d = await tempDir();
    const layer = `${d.path}/layer`;
    Deno.mkdirSync(layer);
    const deep = layer.slice(1);
    const err = await applyTar(
      layer,
      tar([
        { name: `${deep}/`, type: "dir" },
        { name: "q", type: "symlink", linkname: "../../../../../../.." },
        { name: `q/${deep}/canary`, body: "q" },
      ]),
    ).catch((e) => e);
    assert.ok(err instanceof InvalidArchive, `got ${err}`);
    assert.equal(err.entry, `q/${deep}/canary`);
    assert.match(err.message, /symlink "q" -> "\.\.\/\.\.\/\.\./);
    assert.equal(
      Deno.statSync(`${layer}/${deep}`).isDirectory &&
        [...Deno.readDirSync(`${layer}/${deep}`)].length,
      0,
    );
  },
);

privilegedTest(
  "hostile: symlinks that stay in the layer keep working as parents",
  async () => {
    await hostile(
      () => [
        { name: "real/", type: "dir" },
        { name: "rel", type: "symlink", linkname: "real" },
        { name: "abs", type: "symlink", linkname: "/real" },
        { name: "dots", type: "symlink", linkname: "real/../real/./" },
        { name: "chain", type: "symlink", linkname: "rel" },
        { name: "up/", type: "dir" },
        { name: "up/l", type: "symlink", linkname: "../real" },
        { name: "rel/a", body: "a" },
        { name: "abs/b", body: "b" },
        { name: "dots/c", body: "c" },
        { name: "chain/d", body: "d" },
        { name: "up/l/e", body: "e" },
        // A link out of the layer is fine as long as nothing goes through it.
        { name: "out", type: "symlink", linkname: "../../../etc" },
      ],
      "ok",
      (w) =>
        assert.deepEqual(
          [...Deno.readDirSync(`${w.layer}/real`)].map((e) => e.name).sort(),
          ["a", "b", "c", "d", "e"],
        ),
    );
  },
);

privilegedTest(
  "hostile: symlink planted by a previous layer, then entries through it",
  async () => {
    const prepare = (w: World) => {
      Deno.symlinkSync(w.outside, `${w.layer}/prev`);
      Deno.symlinkSync("../outside/canary", `${w.layer}/prevfile`);
    };
    // Parent through the planted link: resolves to layer/<outside>, which does not exist.
    await hostile(
      () => [{ name: "prev/canary", ...evil }],
      "InvalidArchive",
      undefined,
      { prepare },
    );
    await hostile(
      () => [{ name: "prev/new/", type: "dir", mode: 0o777 }],
      "InvalidArchive",
      undefined,
      { prepare },
    );
    // Whiteouts and opaque markers through it are refused (and delete nothing
    // outside); the planted link stays as it was.
    for (const format of ["vfs", "overlay"] as const) {
      for (const name of ["prev/.wh.canary", "prev/.wh..wh..opq"]) {
        await hostile(
          () => [{ name, body: "" }],
          "InvalidArchive",
          (w) => assert.ok(isLink(`${w.layer}/prev`)),
          { prepare, format },
        );
      }
    }
    // Writing, linking or timing the planted file link replaces the link.
    await hostile(
      () => [
        { name: "prevfile", ...evil },
        { name: "h", type: "hardlink", linkname: "prevfile" },
      ],
      "ok",
      (w) => {
        assert.equal(read(`${w.layer}/h`), "pwned");
        assert.equal(statAt(`${w.layer}/h`).nlink, 2);
      },
      { prepare },
    );
    // A hardlink to the planted (not this tar's) link is refused.
    await hostile(
      () => [{ name: "h", type: "hardlink", linkname: "prevfile" }],
      "InvalidArchive",
      undefined,
      { prepare },
    );
  },
);

privilegedTest("hostile: hardlink to an outside file is refused", async () => {
  await hostile(
    (w) => [{ name: "h", type: "hardlink", linkname: w.canary }],
    "InvalidArchive",
  );
  await hostile(
    () => [{ name: "h", type: "hardlink", linkname: "../outside/canary" }],
    "InvalidArchive",
  );
  await hostile(
    () => [{
      name: "h",
      type: "hardlink",
      linkname: "../../../../../../etc/passwd",
    }],
    "InvalidArchive",
  );
});

privilegedTest("hostile: a hard link to itself is refused", async () => {
  // Accepted silently before ("already there"), whatever the spelling.
  for (const linkname of ["a", "./a", "/a"]) {
    await hostile(
      () => [
        { name: "a", body: "x" },
        { name: "./a", type: "hardlink", linkname },
      ],
      { entry: "./a", message: /hard link to itself/ },
    );
  }
});

privilegedTest(
  "hostile: hardlink to a symlink pointing outside, then chmod/chown/write",
  async () => {
    await hostile(
      (w) => [
        { name: "s", type: "symlink", linkname: w.canary },
        {
          name: "h",
          type: "hardlink",
          linkname: "s",
          mode: 0o777,
          uid: 99,
          gid: 99,
          mtime: 7,
        },
        { name: "h2", type: "hardlink", linkname: "s" },
        { name: "h2", ...evil },
      ],
      "ok",
      (w) => {
        assert.ok(isLink(`${w.layer}/h`));
        assert.equal(statAt(`${w.layer}/h`).ino, statAt(`${w.layer}/s`).ino);
        assert.equal(read(`${w.layer}/h2`), "pwned");
        assert.ok(isLink(`${w.layer}/s`));
      },
    );
  },
);

privilegedTest(
  "hostile: PAX path and linkpath overrides cannot escape",
  async () => {
    await hostile(
      () => [
        { name: "harmless", ...evil, pax: { path: "../outside/canary" } },
      ],
      { entry: "../outside/canary", message: climbs },
      (w) => assert.deepEqual(inLayer(w), []),
    );
    await hostile((w) => [
      {
        name: "harmless",
        type: "hardlink",
        linkname: "x",
        pax: { linkpath: w.canary },
      },
    ], "InvalidArchive");
    await hostile(
      () => [{
        name: "harmless",
        type: "hardlink",
        linkname: "x",
        pax: { linkpath: "a/../../outside/canary" },
      }],
      { entry: "harmless", message: /hard-link target .* climbs above/ },
    );
    await hostile(
      (w) => [
        {
          name: "x",
          type: "symlink",
          linkname: "x",
          pax: { path: "../../outside", linkpath: w.canary },
        },
        { name: "outside", ...evil },
      ],
      { entry: "../../outside", message: climbs },
      (w) => assert.deepEqual(inLayer(w), []),
    );
  },
);

privilegedTest("hostile: .wh. of '..' and '.' is refused", async () => {
  for (const format of ["vfs", "overlay", "aufs"] as const) {
    await hostile(
      () => [{ name: "sub/.wh..", body: "" }],
      "InvalidArchive",
      undefined,
      { format },
    );
    await hostile(
      () => [{ name: ".wh..", body: "" }],
      "InvalidArchive",
      undefined,
      { format },
    );
    await hostile(
      () => [{ name: "../.wh.outside", body: "" }],
      { entry: "../.wh.outside", message: climbs },
      undefined,
      { format },
    );
  }
});

privilegedTest(
  "hostile: symlink entry metadata applies to the link, never its target",
  async () => {
    await hostile(
      (w) => [
        {
          name: "l",
          type: "symlink",
          linkname: w.canary,
          mode: 0o4777,
          uid: 77,
          gid: 78,
          mtime: 123,
          mtimeNsec: 9,
          xattrs: { "trusted.x": "1" },
        },
        {
          name: "d",
          type: "symlink",
          linkname: w.outside,
          mode: 0o777,
          uid: 77,
          gid: 78,
          mtime: 123,
        },
      ],
      "ok",
      (w) => {
        const st = statAt(`${w.layer}/l`);
        assert.deepEqual([st.uid, st.gid, st.mtimeSec, st.mtimeNsec], [
          77,
          78,
          123,
          9,
        ]);
      },
    );
    // Devices and FIFOs are chmodded without following a link either.
    await hostile(
      (w) => [
        { name: "f", type: "symlink", linkname: w.canary },
        { name: "f", type: "fifo", mode: 0o4666, uid: 5 },
      ],
      "ok",
      (w) => assert.equal(statAt(`${w.layer}/f`).mode, 0o014666),
    );
  },
);

privilegedTest(
  "hostile: replacing a dir with a symlink, then writing into the old path",
  async () => {
    await hostile((w) => [
      { name: "d/", type: "dir" },
      { name: "d/f", body: "inside" },
      { name: "d", type: "symlink", linkname: w.outside },
      { name: "d/canary", ...evil },
    ], "InvalidArchive");
    await hostile(
      () => [
        { name: "d/", type: "dir" },
        { name: "d/f", body: "inside" },
        { name: "real/", type: "dir" },
        { name: "d", type: "symlink", linkname: "/real" },
        { name: "d/g", ...evil },
        { name: "d/", type: "dir", mode: 0o700, mtime: 9 }, // replaces the link again, not its target
        { name: "d/h", body: "h" },
        { name: "x", type: "hardlink", linkname: "d/f" }, // d/f went with the old dir
      ],
      "InvalidArchive",
      (w) => {
        assert.equal(read(`${w.layer}/real/g`), "pwned");
        assert.equal(statAt(`${w.layer}/d`).mode & 0o170000, 0o040000);
        assert.deepEqual(
          [...Deno.readDirSync(`${w.layer}/d`)].map((e) => e.name),
          ["h"],
        );
      },
    );
  },
);

privilegedTest(
  "hostile: a file replacing a symlinked parent mid-archive drops cached dir fds",
  async () => {
    await hostile(
      (w) => [
        { name: "real/", type: "dir" },
        { name: "p", type: "symlink", linkname: "real" },
        { name: "p/a", body: "1" }, // caches "p" -> real
        { name: "p", type: "dir" },
        { name: "p/b", body: "2" }, // must land in the new dir p, not in real
        { name: "q", type: "symlink", linkname: w.outside },
      ],
      "ok",
      (w) => {
        assert.deepEqual(
          [...Deno.readDirSync(`${w.layer}/real`)].map((e) => e.name),
          ["a"],
        );
        assert.deepEqual(
          [...Deno.readDirSync(`${w.layer}/p`)].map((e) => e.name),
          ["b"],
        );
      },
    );
  },
);

privilegedTest(
  "hostile: a refused tar leaves nothing in the store; applyTar keeps what came before",
  async () => {
    const entries: E[] = [
      { name: "./", type: "dir" },
      { name: "./etc/", type: "dir" },
      { name: "./etc/hosts", body: "127.0.0.1\n" },
      { name: "./../escape", ...evil },
    ];
    for (const backend of ["vfs", "overlay"] as const) {
      await using tmp = await tempDir();
      const store = await openStore({ root: `${tmp.path}/store`, backend });
      try {
        const err = await store.applyDiff("evil", undefined, tar(entries))
          .catch((e) => e);
        assert.ok(err instanceof InvalidArchive, `${backend}: got ${err}`);
        assert.equal(err.entry, "./../escape");
        assert.equal(await store.exists("evil"), false);
        for (const d of ["staging", "diff", "layers", "meta"]) {
          assert.deepEqual(
            [...Deno.readDirSync(`${tmp.path}/store/${d}`)],
            [],
            `${backend}: ${d}/ is not empty`,
          );
        }
      } finally {
        await store.cleanup();
        store.close();
      }
    }
    // A plain directory: entries before the refused one stay (documented),
    // nothing lands outside it.
    await hostile(
      () => entries,
      { entry: "./../escape", message: climbs },
      (w) => {
        assert.equal(read(`${w.layer}/etc/hosts`), "127.0.0.1\n");
        assert.deepEqual(inLayer(w), ["etc"]);
      },
    );
  },
);

privilegedTest(
  "hostile: security.selinux labels from the tar are dropped, security.capability is kept",
  async () => {
    // A valid vfs_cap_data v2: cap_net_raw, effective.
    const cap = new Uint8Array(20);
    cap.set([0x01, 0, 0, 0x02, 0, 0x20]);
    const label = "system_u:object_r:shadow_t:s0";
    const xa = { "security.selinux": label, "security.capability": cap };
    await hostile(
      () => [
        { name: "d/", type: "dir", xattrs: { "security.selinux": label } },
        { name: "d/ping", body: "elf", mode: 0o755, xattrs: xa },
        { name: "d/l", type: "symlink", linkname: "ping", xattrs: xa },
        {
          name: "d/fifo",
          type: "fifo",
          xattrs: { "security.selinux": label },
        },
      ],
      "ok",
      async (w) => {
        const hex = [...cap].map((b) => b.toString(16).padStart(2, "0"))
          .join("");
        for (const p of ["d", "d/l", "d/fifo"]) {
          const got = await xattrs(`${w.layer}/${p}`);
          assert.equal(got["security.selinux"], undefined, p);
        }
        const got = await xattrs(`${w.layer}/d/ping`);
        assert.equal(got["security.selinux"], undefined);
        assert.equal(got["security.capability"], hex);
      },
    );
  },
);
