/**
 * The `layerfs` CLI on a store with damaged layers (a corrupt meta, a layers
 * record naming a bad parent, a content dir deleted by hand): `ls` keeps
 * listing and marks them, `check` names each layer and file and exits 1,
 * `--repair` leaves what it cannot restore exactly, `mount` fails with one
 * line naming the layer (no bare syscall error), and `rm --force` removes
 * them, on overlay (root) and vfs.
 */
import assert from "node:assert/strict";
import { privilegedTest, tempDir } from "../_privileged.ts";

import { layerfs } from "./_layerfs.ts";

async function damagedStore(backend: string): Promise<void> {
  await using tmp = await tempDir();
  const root = `${tmp.path}/store`;
  const g = ["--root", root, "--backend", backend];
  const ok = async (args: string[]) => {
    const r = await layerfs([...g, ...args]);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    return r;
  };
  await ok(["init"]);
  await ok(["create", "base"]);
  await ok(["create", "app", "--parent", "base"]);
  await ok(["create", "gone", "--parent", "base", "--rw"]);
  await ok(["create", "bad", "--parent", "base"]);
  await ok(["create", "fine", "--rw"]);
  assert.doesNotMatch((await ok(["ls"])).stdout, /PROBLEM|damaged/);

  await Deno.writeTextFile(`${root}/meta/app`, '{"readWr'); // truncated
  await Deno.remove(`${root}/diff/gone`, { recursive: true });
  await Deno.writeTextFile(`${root}/layers/bad`, "../../etc\n");

  // ls: every layer, the damaged ones marked with why.
  const ls = await ok(["ls"]);
  assert.match(ls.stdout, /^ID\s+PARENT\s+KIND\s+MOUNTS\s+PROBLEM\n/);
  assert.match(ls.stdout, /\napp\s+base\s+damaged\s+0\s+meta\/app is not/);
  assert.match(
    ls.stdout,
    /\ngone\s+base\s+damaged\s+0\s+diff\/gone is missing/,
  );
  assert.match(ls.stdout, /\nbad\s+-\s+damaged\s+0\s+layers\/bad names an/);
  assert.match(ls.stdout, /\nfine\s+-\s+rw\s+0\s+-\n/);
  const rows = JSON.parse((await ok(["--json", "ls"])).stdout).layers;
  assert.deepEqual(
    rows.map((r: { id: string; damaged?: string }) => [r.id, !!r.damaged]),
    [["app", true], ["bad", true], ["base", false], ["fine", false], [
      "gone",
      true,
    ]],
  );
  assert.equal(
    "damaged" in rows.find((r: { id: string }) => r.id === "base"),
    false,
  );

  // check: each damaged layer named with its file and the fix; exit 1.
  const check = await layerfs([...g, "check"]);
  assert.equal(check.code, 1);
  assert.match(
    check.stdout,
    /problem: layer "app": meta\/app is not a valid JSON object.*layerfs rm --force app/,
  );
  assert.match(
    check.stdout,
    /problem: layer "gone": diff\/gone is missing.*layerfs rm --force gone/,
  );
  assert.match(
    check.stdout,
    /problem: layer "bad": layers\/bad names an invalid parent id.*layerfs rm --force bad/,
  );
  const repair = await layerfs([...g, "--json", "check", "--repair"]);
  assert.equal(repair.code, 1, "nothing of it can be restored exactly");
  const left = JSON.parse(repair.stdout).problems.filter((
    p: { repaired: boolean },
  ) => !p.repaired).map((p: { subject: string }) => p.subject).sort();
  assert.deepEqual(left, ["diff/gone", "layers/bad", "meta/app"]);
  assert.equal(await Deno.readTextFile(`${root}/meta/app`), '{"readWr');

  // mount: one line naming the layer and what to do, no syscall error.
  for (const id of ["app", "gone", "bad"]) {
    const m = await layerfs([...g, "mount", id]);
    assert.equal(m.code, 1, id);
    assert.equal(m.stdout, "");
    assert.match(
      m.stderr,
      new RegExp(
        `^layerfs: Layer "${id}" is damaged: .*run "layerfs check".*\\n$`,
      ),
    );
    assert.doesNotMatch(m.stderr, /ENOENT|fsconfig|openat/);
  }
  const path = (await ok(["mount", "fine"])).stdout.trim();
  await Deno.writeTextFile(`${path}/x`, "x\n");
  await ok(["umount", "fine"]);

  // rm --force removes what is left of each; the store is whole again.
  for (const id of ["app", "gone", "bad"]) await ok(["rm", "--force", id]);
  assert.deepEqual(
    JSON.parse((await ok(["--json", "ls"])).stdout).layers.map((
      r: { id: string },
    ) => r.id),
    ["base", "fine"],
  );
  assert.match((await ok(["check"])).stdout, /is consistent/);
}

privilegedTest("cli: damaged layers on overlay", () => damagedStore("overlay"));
Deno.test("cli: damaged layers on vfs", () => damagedStore("vfs"));
