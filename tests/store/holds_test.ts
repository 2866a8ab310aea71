/**
 * Hold records (src/store/holds.ts) and their release (dead_holds.ts):
 * who counts as exited (a reused pid, an earlier boot, another pid
 * namespace), and a release whose unmount fails keeps its record.
 *
 * @module
 */
import assert from "node:assert/strict";
import { StoreLayout } from "../../src/layout.ts";
import type { Mounter } from "../../src/mount/mounter.ts";
import { MountError } from "../../src/errors.ts";
import {
  addHolds,
  holdName,
  readHolds,
  removeHolds,
} from "../../src/store/holds.ts";
import { deadHolds, releaseDeadHolds } from "../../src/store/dead_holds.ts";
import { readCount, writeCount } from "../../src/store/refcounts.ts";
import { directMounter } from "../../src/mount/mounter.ts";
import { privilegedTest, unmountUnder } from "../_privileged.ts";

const ownHeader = async () => {
  const root = await Deno.makeTempDir();
  const layout = new StoreLayout(root);
  addHolds(layout, ["x"]);
  const text = await Deno.readTextFile(`${root}/run/holds/${holdName()}`);
  await Deno.remove(root, { recursive: true });
  return text.split("\n")[0];
};

async function withRecords(
  records: Record<string, string>,
  fn: (layout: StoreLayout, root: string) => void | Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/run/holds`, { recursive: true });
    for (const [name, text] of Object.entries(records)) {
      await Deno.writeTextFile(`${root}/run/holds/${name}`, text);
    }
    await fn(new StoreLayout(root), root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("holds: the owner is this process's pid and its start time (field 22 of /proc/self/stat)", async () => {
  const stat = await Deno.readTextFile("/proc/self/stat");
  const start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  assert.equal(holdName(), `${Deno.pid}-${start}`);
});

Deno.test("holds: a live pid with another start time (a reused pid) is not the owner", async () => {
  const header = await ownHeader();
  const [pid, start] = holdName().split("-");
  await withRecords({
    [`${pid}-${Number(start) + 1}`]: `${header}\na\n`,
    [holdName()]: `${header}\nb\n`,
  }, (layout) => {
    const byFile = Object.fromEntries(
      readHolds(layout).map((h) => [h.file, h.exited]),
    );
    assert.equal(byFile[`${pid}-${Number(start) + 1}`], true);
    assert.equal(byFile[holdName()], false);
  });
});

Deno.test("holds: a record of an earlier boot is exited; one of another pid namespace is never called exited", async () => {
  const [pid, start] = holdName().split("-");
  await withRecords({
    [holdName()]: `# boot 00000000-0000-0000-0000-000000000000 pidns -\na\n`,
    [`999999999-${start}`]: `# boot - pidns 1\nb\n`,
    [`${pid}-1`]: "c\n", // no header: this boot, this namespace
  }, (layout) => {
    assert.deepEqual(
      readHolds(layout).map((h) => [h.ids[0], h.exited]).sort(),
      [["a", true], ["b", false], ["c", true]],
    );
  });
});

Deno.test("holds: a layer held twice is released twice; an empty line ends a record; foreign lines hold nothing", async () => {
  const header = await ownHeader();
  await withRecords({
    [holdName()]: `${header}\na\nnot an id!\na\n\nb\n`, // "b": an old tail
  }, (layout) => {
    assert.deepEqual(readHolds(layout)[0].ids, ["a", "a"]);
    assert.deepEqual(removeHolds(layout, ["a"]), ["a"]);
    assert.deepEqual(readHolds(layout)[0].ids, ["a"]);
    assert.deepEqual(removeHolds(layout, ["a", "a", "b"]), ["a"]);
    assert.deepEqual(readHolds(layout).map((h) => h.ids), [[]]);
    addHolds(layout, ["c"]);
    assert.deepEqual(readHolds(layout)[0].ids, ["c"]);
  });
});

privilegedTest(
  "holds: a release whose unmount fails keeps that hold and its count, and releases the others",
  async () => {
    await withRecords({
      "999999999-1": "# boot - pidns -\nview\nplain\n",
    }, async (layout, root) => {
      await Deno.mkdir(`${root}/layers`);
      for (const id of ["view", "plain"]) {
        await Deno.writeTextFile(`${root}/layers/${id}`, "");
        writeCount(layout, id, 1);
      }
      const mnt = `${root}/mnt/view`;
      await Deno.mkdir(mnt, { recursive: true });
      const bind = await new Deno.Command("mount", {
        args: ["--bind", root, mnt],
      })
        .output();
      assert.ok(bind.success, "mount --bind");
      try {
        const refusing: Mounter = {
          mount: () => Promise.reject(new MountError("mount", "EPERM", mnt)),
          unmount: () => Promise.reject(new MountError("umount", "EPERM", mnt)),
        };
        await assert.rejects(releaseDeadHolds(layout, refusing), MountError);
        assert.equal(readCount(layout, "plain"), 0);
        assert.equal(readCount(layout, "view"), 1);
        assert.deepEqual(deadHolds(layout).map((h) => h.id), ["view"]);
      } finally {
        await unmountUnder(root);
      }
      // Once the unmount works, the next release finishes the job.
      assert.deepEqual(
        (await releaseDeadHolds(layout, directMounter)).map((h) => h.id),
        ["view"],
      );
      assert.equal(readCount(layout, "view"), 0);
      assert.deepEqual(deadHolds(layout), []);
    });
  },
);
