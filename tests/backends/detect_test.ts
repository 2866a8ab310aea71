/** The `auto` rule and explicit backend checks, as a pure function of host facts. */
import assert from "node:assert/strict";
import { chooseBackend, type HostProbe } from "../../src/backends/detect.ts";
import { BackendNotSupported, IncompatibleBackingFs } from "../../mod.ts";

const good: HostProbe = {
  filesystems: ["ext4", "tmpfs", "overlay"],
  canMount: true,
  backingFs: "ext4",
  dType: true,
};

Deno.test("auto: overlay when the kernel has it, we may mount and the fs suits", () => {
  assert.equal(chooseBackend("auto", good, "/s").backend, "overlay");
});

Deno.test("auto: aufs when overlay cannot work but aufs can", () => {
  const c = chooseBackend(
    "auto",
    { ...good, filesystems: ["ext4", "aufs"] },
    "/s",
  );
  assert.equal(c.backend, "aufs");
  assert.match(c.reason, /overlay: the kernel has no overlay/);
});

Deno.test("auto: vfs without privileges, on overlay, or without d_type", () => {
  for (
    const p of [
      { ...good, canMount: false },
      { ...good, backingFs: "overlayfs" },
      { ...good, backingFs: "ecryptfs" },
      { ...good, dType: false },
    ]
  ) {
    const c = chooseBackend("auto", p, "/s");
    assert.equal(c.backend, "vfs");
    assert.match(c.reason, /using vfs/);
  }
});

Deno.test("explicit backends that cannot run are refused with typed errors", () => {
  assert.throws(() => chooseBackend("aufs", good, "/s"), BackendNotSupported);
  assert.throws(
    () => chooseBackend("overlay", { ...good, canMount: false }, "/s"),
    BackendNotSupported,
  );
  assert.throws(
    () => chooseBackend("overlay", { ...good, backingFs: "overlayfs" }, "/s"),
    IncompatibleBackingFs,
  );
  assert.equal(
    chooseBackend("vfs", { ...good, canMount: false }, "/s").backend,
    "vfs",
  );
});
