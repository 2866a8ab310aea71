/**
 * The aufs mount sequence as data (this kernel has no aufs): Docker's aufs
 * driver sequence, including a root whose page boundary falls inside a branch
 * (moby's TestMountMoreThan42Layers idea).
 */
import assert from "node:assert/strict";
import { planAufsMount } from "../../src/backends/aufs.ts";
import { MS } from "../../src/sys/mount_linux.ts";

const BASE = MS.NOSUID | MS.NODEV;

function chain(n: number): string[] {
  return Array.from(
    { length: n },
    (_, i) => `p${String(n - i).padStart(3, "0")}`,
  );
}

Deno.test("aufs plan: a base layer mounts nothing", () => {
  const plan = planAufsMount({
    root: "/s",
    id: "a",
    parents: [],
    readWrite: true,
  });
  assert.deepEqual(plan, { kind: "none", target: "/s/diff/a" });
});

Deno.test("aufs plan: a short chain is one mount with every branch", () => {
  const plan = planAufsMount({
    root: "/s",
    id: "c",
    parents: ["b", "a"],
    readWrite: true,
  });
  assert.deepEqual(plan, {
    kind: "aufs",
    target: "/s/mnt/c",
    branches: 3,
    calls: [{
      source: "none",
      target: "/s/mnt/c",
      fstype: "aufs",
      flags: BASE,
      data:
        "br:/s/diff/c=rw:/s/diff/b=ro+wh:/s/diff/a=ro+wh,dio,xino=/dev/shm/aufs.xino",
    }],
  });
});

Deno.test("aufs plan: read-only layers and labels", () => {
  const plan = planAufsMount({
    root: "/s",
    id: "c",
    parents: ["b"],
    readWrite: false,
    mountLabel: "system_u:object_r:container_file_t:s0",
  });
  assert.equal(plan.kind, "aufs");
  if (plan.kind !== "aufs") return;
  assert.equal(plan.calls[0].flags, BASE | MS.RDONLY);
  assert.equal(
    plan.calls[0].data,
    'br:/s/diff/c=rw:/s/diff/b=ro+wh,dio,xino=/dev/shm/aufs.xino,context="system_u:object_r:container_file_t:s0"',
  );
});

for (
  const label of [undefined, "system_u:object_r:svirt_sandbox_file_t:s0:c1,c2"]
) {
  Deno.test(`aufs plan: page boundary inside a branch (label ${label ? "set" : "unset"})`, () => {
    const parents = chain(100);
    // A root length chosen so the page boundary cuts a branch in the middle.
    let root = "";
    let cut = -1;
    const labelLen = label ? label.length : 0;
    const room = 4096 - labelLen - 54;
    for (let n = 40; n < 80 && cut < 0; n++) {
      root = "/" + "r".repeat(n);
      let used = `br:${root}/diff/top=rw`.length;
      for (let i = 0; i < parents.length; i++) {
        const len = `:${root}/diff/${parents[i]}=ro+wh`.length;
        if (used + len > room) {
          if (used < room && used + len > room + 1) cut = i; // boundary strictly inside branch i
          break;
        }
        used += len;
      }
    }
    assert.ok(cut > 0, "found a root length with the boundary inside a branch");

    const plan = planAufsMount({
      root,
      id: "top",
      parents,
      readWrite: true,
      mountLabel: label,
    });
    assert.equal(plan.kind, "aufs");
    if (plan.kind !== "aufs") return;
    const suffix = label ? `,context="${label}"` : "";
    const first = plan.calls[0];
    assert.equal(first.flags, BASE);
    assert.ok(first.data.startsWith(`br:${root}/diff/top=rw:`));
    assert.ok(first.data.endsWith(`,dio,xino=/dev/shm/aufs.xino${suffix}`));
    assert.ok(
      first.data.length <= 4095,
      "first mount fits in a page with its NUL",
    );
    const inFirst = first.data.split(",")[0].split(":").slice(2);
    assert.deepEqual(
      inFirst,
      parents.slice(0, cut).map((p) => `${root}/diff/${p}=ro+wh`),
    );
    // Every branch that did not fit follows, in order, one MS_REMOUNT append each.
    assert.deepEqual(
      plan.calls.slice(1),
      parents.slice(cut).map((p) => ({
        source: "none",
        target: `${root}/mnt/top`,
        fstype: "aufs",
        flags: BASE | MS.REMOUNT,
        data: `append:${root}/diff/${p}=ro+wh${suffix}`,
      })),
    );
    assert.equal(plan.branches, 101);
  });
}
