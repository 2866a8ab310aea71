/**
 * End-to-end scenarios: image layers imported with applyDiff, a container
 * layer changed through its view, and its diff re-imported must give the
 * same tree; a truncated tar leaves no layer; "" and null mean no parent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { InvalidArchive, tarHeader, TarWriter } from "../../../mod.ts";
import { isRoot } from "../../_privileged.ts";
import { whiteoutCodec } from "../../../src/archive/whiteout/mod.ts";
import {
  collect,
  describeTree,
  gnuTar,
  gnuTarList,
} from "../../integration/_tree.ts";
import type { Suite } from "./_harness.ts";

/** A foreign owner needs root (chown); without it the fixture keeps ours. */
const OWNER = isRoot ? 1000 : Deno.uid()!;
/** What the container chowns /opt/owned to (root only: 0). */
const NEW_OWNER = isRoot ? 0 : Deno.uid()!;
async function write(path: string, text: string, mode = 0o644): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, text, { mode });
  await Deno.chmod(path, mode);
}

/** The base image: a few dirs, files with odd modes and owners, a symlink. */
async function makeBase(dir: string): Promise<void> {
  await write(`${dir}/etc/hosts`, "127.0.0.1 localhost\n");
  await write(`${dir}/etc/passwd`, "root:x:0:0::/root:/bin/sh\n");
  await write(`${dir}/bin/sh`, "#!/bin/true\n", 0o755);
  await write(`${dir}/usr/share/doc/a.txt`, "a\n");
  await write(`${dir}/usr/share/doc/b.txt`, "b\n");
  await write(`${dir}/var/cache/old1`, "o1\n");
  await write(`${dir}/var/cache/old2`, "o2\n");
  await write(`${dir}/var/lib/keep`, "keep\n");
  await write(`${dir}/opt/owned`, "owned by 1000\n", 0o640);
  await Deno.chown(`${dir}/opt/owned`, OWNER, OWNER);
  await write(`${dir}/usr/bin/su`, "setuid\n", 0o4755);
  await Deno.symlink("/etc/hosts", `${dir}/hosts-link`);
}

/** The child image: deletes a file and a dir, makes a dir opaque, changes a file. */
async function makeChild(dir: string): Promise<void> {
  await write(`${dir}/etc/.wh.passwd`, "");
  await write(`${dir}/etc/hosts`, "10.0.0.1 db\n");
  await write(`${dir}/usr/share/.wh.doc`, "");
  await write(`${dir}/var/cache/.wh..wh..opq`, "");
  await write(`${dir}/var/cache/new`, "new\n");
}

export function endToEndScenarios(s: Suite): void {
  s.store(
    "layers end to end: apply, mount, change, diff, re-apply",
    async ({ store, tmp }) => {
      if (!isRoot) {
        console.warn(
          "layers end to end: files owned by another user need root (chown); checking own-user owners",
        );
      }
      {
        await makeBase(`${tmp}/base`);
        await makeChild(`${tmp}/child`);

        const baseSize = await store.applyDiff(
          "base",
          undefined,
          await gnuTar(`${tmp}/base`),
        );
        assert.equal(baseSize, await store.diffSize("base"));
        await store.applyDiff(
          "child",
          "base",
          await gnuTar(`${tmp}/child`),
        );
        assert.deepEqual(await store.parents("child"), ["base"]);

        // The child's view: whiteouts and the opaque dir took effect.
        const childView = await store.get("child");
        const child = await describeTree(childView);
        assert.equal(child.has("/etc/passwd"), false);
        assert.equal(child.has("/usr/share/doc"), false);
        assert.deepEqual(
          [...child.keys()].filter((p) => p.startsWith("/var/cache/")),
          ["/var/cache/new"],
        );
        assert.equal(child.get("/etc/hosts")?.content, "10.0.0.1 db\n");
        assert.equal(child.get("/usr/bin/su")?.mode, 0o4755);
        assert.deepEqual(
          [child.get("/opt/owned")?.uid, child.get("/opt/owned")?.gid],
          [OWNER, OWNER],
        );
        assert.equal(child.get("/hosts-link")?.content, "/etc/hosts");
        for (const p of child.keys()) {
          assert.ok(!p.includes(".wh."), `whiteout visible: ${p}`);
        }
        await store.put("child");

        // A container changes things through its mounted view.
        await store.createReadWrite("ctr", "child");
        const view = await store.get("ctr");
        await Deno.remove(`${view}/bin/sh`);
        await write(`${view}/usr/share/doc/c.txt`, "recreated\n");
        await Deno.chown(`${view}/opt/owned`, NEW_OWNER, NEW_OWNER);
        if (!isRoot) await Deno.chmod(`${view}/opt/owned`, 0o600); // a change all the same
        await Deno.rename(`${view}/var/lib/keep`, `${view}/var/keep`);
        await write(`${view}/new.txt`, "hello\n");
        await Deno.remove(`${view}/var/cache`, { recursive: true });
        const expected = await describeTree(view);
        await store.put("ctr");

        const changes = new Map(
          (await store.changes("ctr")).map((c) => [c.path, c.kind] as const),
        );
        for (
          const [path, kind] of [
            ["/bin/sh", "delete"],
            ["/new.txt", "add"],
            ["/var/keep", "add"],
            ["/var/lib/keep", "delete"],
            ["/opt/owned", "modify"],
            ["/usr/share/doc/c.txt", "add"],
            ["/var/cache", "delete"],
          ] as const
        ) assert.equal(changes.get(path), kind, `change of ${path}`);
        assert.equal(
          changes.has("/etc/hosts"),
          false,
          "untouched file reported",
        );

        // Its diff is an OCI tar; re-imported on the same parent it gives the same view.
        const tar = await collect(store.diff("ctr"));
        const names = await gnuTarList(tar);
        assert.ok(
          names.some((n) => /(^|\/)bin\/\.wh\.sh$/.test(n)),
          names.join("\n"),
        );
        await store.applyDiff("ctr-img", "child", tar);
        const reimported = await describeTree(await store.get("ctr-img"));
        assert.deepEqual(reimported, expected);
        await store.put("ctr-img");

        // The same layer exports the same bytes.
        assert.deepEqual(await collect(store.diff("ctr")), tar);
      }
    },
  );

  s.store(
    "applyDiff of a truncated tar leaves no layer",
    async ({ store, tmp }) => {
      {
        await makeBase(`${tmp}/base`);
        const tar = await gnuTar(`${tmp}/base`);
        await store.applyDiff("base", undefined, tar);
        const cut = tar.subarray(0, 512 * 5 + 100);
        await assert.rejects(
          store.applyDiff("broken", "base", cut),
          InvalidArchive,
        );
        assert.equal(await store.exists("broken"), false);
        assert.deepEqual((await store.list()).map((l) => l.id), ["base"]);
        const staging = await Array.fromAsync(
          Deno.readDir(`${store.root}/staging`),
        );
        assert.deepEqual(staging, []);
      }
    },
  );

  s.store(
    "applyDiff of a 0:0 character device: refused where it is the backend's whiteout, else a device",
    { root: "mknod of a character device (a rootless apply skips devices)" },
    async ({ store, backend }) => {
      const w = new TarWriter();
      const tar = new Response(w.readable).bytes();
      await w.add(tarHeader({ name: "dev/", type: "dir" }));
      await w.add(tarHeader({ name: "dev/null0", type: "char" }));
      await w.close();
      if (whiteoutCodec(backend.whiteoutFormat).zeroDeviceIsWhiteout) {
        await assert.rejects(
          store.applyDiff("dev", undefined, await tar),
          (e: unknown) =>
            e instanceof InvalidArchive && e.entry === "dev/null0",
        );
        assert.equal(await store.exists("dev"), false);
        return;
      }
      await store.applyDiff("dev", undefined, await tar);
      const st = Deno.lstatSync(`${await store.get("dev")}/dev/null0`);
      assert.ok(st.isCharDevice);
      assert.equal(st.rdev, 0);
      await store.put("dev");
    },
  );

  s.store(
    `"" and null mean "no parent", as moby's callers pass them`,
    async ({ store, tmp }) => {
      await store.create("a", "");
      await store.createReadWrite("b", null);
      await makeBase(`${tmp}/base`);
      await store.applyDiff("c", "", await gnuTar(`${tmp}/base`));
      for (const id of ["a", "b", "c"]) {
        assert.deepEqual(
          await store.parents(id),
          [],
        );
      }
      assert.equal(await store.diffSize("c", ""), await store.diffSize("c"));
      assert.deepEqual(
        await store.changes("c", null),
        await store.changes("c"),
      );
    },
  );
}
