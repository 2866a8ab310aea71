/**
 * Overlay planning, the mount(2) fallback's page limit (tested as data), and
 * mountinfo parsing/verification.
 */
import assert from "node:assert/strict";
import { planOverlayMount } from "../../src/backends/overlay.ts";
import { legacyOverlayCall, mismatch } from "../../src/mount/perform.ts";
import { overlayLayers, parseMountInfo } from "../../src/mount/mountinfo.ts";
import type { OverlayMountPlan } from "../../src/mount/plan.ts";
import { shortLinkName } from "../../src/backends/overlay.ts";
import { MountError } from "../../mod.ts";
import { MS } from "../../src/sys/mount_linux.ts";

function overlayPlan(
  root: string,
  layers: number,
  readWrite = true,
): OverlayMountPlan {
  const parents = Array.from(
    { length: layers },
    (_, i) => `layer-${layers - i}`,
  );
  const plan = planOverlayMount({ root, id: "top", parents, readWrite });
  assert.equal(plan.kind, "overlay");
  return plan as OverlayMountPlan;
}

Deno.test("overlay plan: lower dirs nearest first, nosuid,nodev, the layer as upper dir when read-write", () => {
  const plan = overlayPlan("/s", 2, true);
  assert.deepEqual(plan.lowerdirs, ["/s/diff/layer-2", "/s/diff/layer-1"]);
  assert.equal(plan.upperdir, "/s/diff/top");
  assert.equal(plan.workdir, "/s/work/top");
  assert.equal(plan.target, "/s/mnt/top");
  assert.deepEqual([plan.readOnly, plan.nosuid, plan.nodev], [
    false,
    true,
    true,
  ]);
  assert.deepEqual(plan.short, {
    cwd: "/s",
    lowerdirs: [
      `l/${shortLinkName("layer-2")}`,
      `l/${shortLinkName("layer-1")}`,
    ],
    upperdir: "diff/top",
    workdir: "work/top",
  });
});

Deno.test("overlay plan: a read-only layer is the top lower dir, with no upper dir the kernel would write to", () => {
  const plan = overlayPlan("/s", 2, false);
  assert.deepEqual(plan.lowerdirs, [
    "/s/diff/top",
    "/s/diff/layer-2",
    "/s/diff/layer-1",
  ]);
  assert.equal(plan.upperdir, undefined);
  assert.equal(plan.workdir, undefined);
  assert.equal(plan.readOnly, true);
  assert.deepEqual(plan.short, {
    cwd: "/s",
    lowerdirs: ["top", "layer-2", "layer-1"].map((p) =>
      `l/${shortLinkName(p)}`
    ),
  });
  const { call } = legacyOverlayCall(plan);
  assert.equal(
    call.data,
    "lowerdir=/s/diff/top:/s/diff/layer-2:/s/diff/layer-1",
  );
  assert.equal(call.flags, MS.NOSUID | MS.NODEV | MS.RDONLY);
  // 499 parents: 500 lower dirs, the kernel's limit. A layer with 500
  // parents (made before maxDepth kept the slot) keeps the upper dir.
  assert.equal(overlayPlan("/s", 499, false).lowerdirs.length, 500);
  const deep = overlayPlan("/s", 500, false);
  assert.equal(deep.lowerdirs.length, 500);
  assert.equal(deep.upperdir, "/s/diff/top");
  assert.equal(deep.readOnly, true);
});

Deno.test("mountinfo check: a read-only view must have no upper dir", () => {
  const plan = overlayPlan("/s", 1, false);
  const [ok, upper] = parseMountInfo(
    "45 27 0:39 / /s/mnt/top ro,nosuid,nodev - overlay none ro,lowerdir+=/s/diff/top,lowerdir+=/s/diff/layer-1\n" +
      "46 27 0:40 / /s/mnt/top ro,nosuid,nodev - overlay none ro,lowerdir+=/s/diff/top,lowerdir+=/s/diff/layer-1,upperdir=/s/diff/x,workdir=/s/work/x\n",
  );
  assert.equal(mismatch(plan, ok), undefined);
  assert.match(
    mismatch(plan, upper) ?? "",
    /upperdir \/s\/diff\/x, none was planned/,
  );
});

Deno.test("fallback: absolute option string when it fits in a page", () => {
  const plan = overlayPlan("/s", 3);
  const { call, cwd } = legacyOverlayCall(plan);
  assert.equal(cwd, undefined);
  assert.equal(call.flags, MS.NOSUID | MS.NODEV);
  assert.equal(
    call.data,
    "lowerdir=/s/diff/layer-3:/s/diff/layer-2:/s/diff/layer-1,upperdir=/s/diff/top,workdir=/s/work/top",
  );
});

Deno.test("fallback: short links from the store root when absolute paths do not fit", () => {
  const root = "/var/lib/" + "x".repeat(60);
  const plan = overlayPlan(root, 128);
  const { call, cwd } = legacyOverlayCall(plan);
  assert.equal(cwd, root);
  assert.ok(call.data.length <= 4095);
  const lowers = call.data.split(",")[0].slice("lowerdir=".length).split(":");
  assert.equal(lowers.length, 128);
  assert.deepEqual(lowers, plan.short!.lowerdirs);
  assert.match(call.data, /,upperdir=diff\/top,workdir=work\/top$/);
});

Deno.test("fallback: fails clearly instead of truncating when even short links do not fit", () => {
  const plan = overlayPlan("/s", 500);
  assert.throws(() => legacyOverlayCall(plan), (e) => {
    assert.ok(e instanceof MountError);
    assert.equal(e.code, "E2BIG");
    assert.match(e.message, /500 lower layers do not fit/);
    return true;
  });
  // The limit is the page size, NUL included: exactly 4095 bytes fit, 4096 do not.
  const small = overlayPlan("/s", 1);
  const len = legacyOverlayCall(small).call.data.length;
  assert.doesNotThrow(() =>
    legacyOverlayCall({ ...small, short: undefined }, len + 1)
  );
  assert.throws(
    () => legacyOverlayCall({ ...small, short: undefined }, len),
    MountError,
  );
});

Deno.test("fallback: paths with , or : are refused", () => {
  const plan = overlayPlan("/s,x", 2);
  assert.throws(
    () => legacyOverlayCall(plan),
    (e) => e instanceof MountError && e.code === "EINVAL",
  );
});

Deno.test("mountinfo: both overlay forms parse; verification catches a truncated mount", () => {
  const text = [
    "45 27 0:39 / /s/mnt/top ro,nosuid,nodev,relatime - overlay none rw,lowerdir+=/s/diff/b,lowerdir+=/s/diff/a,upperdir=/s/diff/top,workdir=/s/work/top,uuid=on",
    "46 27 0:40 / /s/mnt/with\\040space rw - overlay overlay rw,lowerdir=/x\\:y:/z,upperdir=/u",
  ].join("\n") + "\n";
  const [a, b] = parseMountInfo(text);
  assert.equal(b.mountPoint, "/s/mnt/with space");
  assert.deepEqual(overlayLayers(a), {
    lowerdirs: ["/s/diff/b", "/s/diff/a"],
    upperdir: "/s/diff/top",
    workdir: "/s/work/top",
  });
  assert.deepEqual(overlayLayers(b), {
    lowerdirs: ["/x:y", "/z"],
    upperdir: "/u",
  });

  const plan: OverlayMountPlan = {
    kind: "overlay",
    target: "/s/mnt/top",
    lowerdirs: ["/s/diff/b", "/s/diff/a"],
    upperdir: "/s/diff/top",
    workdir: "/s/work/top",
    readOnly: true,
    nosuid: true,
    nodev: true,
  };
  assert.equal(mismatch(plan, a), undefined);
  assert.match(
    mismatch({ ...plan, lowerdirs: ["/s/diff/c", ...plan.lowerdirs] }, a)!,
    /2 lower dirs, 3 were planned/,
  );
  assert.match(
    mismatch({ ...plan, upperdir: "/s/diff/other" }, a)!,
    /upperdir/,
  );
  assert.match(mismatch(plan, undefined)!, /nothing is mounted/);
});

Deno.test("shortLinkName keeps the names of existing l/ links: 64-bit FNV-1a, base32 from the low bits", () => {
  // The reference with BigInt, as the names were first computed: stores
  // made then have l/<name> links that must still be found.
  const reference = (id: string) => {
    let h = 0xcbf29ce484222325n;
    for (const b of new TextEncoder().encode(id)) {
      h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
    }
    let out = "";
    for (let i = 0; i < 12; i++, h >>= 5n) {
      out += "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[Number(h & 31n)];
    }
    return out;
  };
  const ids = ["base", "a", "l1", "ctr-abc_1.2", "x".repeat(128), "ünïcode"];
  for (let i = 0; i < 2000; i++) ids.push(`id${i}-${(i * 7919).toString(36)}`);
  for (const id of ids) assert.equal(shortLinkName(id), reference(id), id);
});
