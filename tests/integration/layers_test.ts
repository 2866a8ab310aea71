/**
 * End-to-end: image layers imported with applyDiff, a container layer changed
 * through its mounted view, and its diff re-imported must give the same tree.
 * Runs the same scenario on every backend this machine can run (the
 * conformance idea of containerd's snapshotter test suite).
 */
import assert from "node:assert/strict";
import { InvalidArchive, openStore } from "../../mod.ts";
import { privilegedTest, tempDir } from "../_privileged.ts";
import { collect, describeTree, gnuTar, gnuTarList } from "./_tree.ts";

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
  await Deno.chown(`${dir}/opt/owned`, 1000, 1000);
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

for (const backend of ["overlay", "vfs"] as const) {
  privilegedTest(
    `layers end to end (${backend}): apply, mount, change, diff, re-apply`,
    async () => {
      await using tmp = await tempDir();
      const store = await openStore({ root: `${tmp.path}/store`, backend });
      try {
        assert.equal(store.backend, backend);
        await makeBase(`${tmp.path}/base`);
        await makeChild(`${tmp.path}/child`);

        const baseSize = await store.applyDiff(
          "base",
          undefined,
          await gnuTar(`${tmp.path}/base`),
        );
        assert.equal(baseSize, await store.diffSize("base"));
        await store.applyDiff(
          "child",
          "base",
          await gnuTar(`${tmp.path}/child`),
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
          [1000, 1000],
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
        await Deno.chown(`${view}/opt/owned`, 0, 0);
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
      } finally {
        await store.cleanup();
        store.close();
      }
    },
  );

  privilegedTest(
    `applyDiff of a truncated tar leaves no layer (${backend})`,
    async () => {
      await using tmp = await tempDir();
      const store = await openStore({ root: `${tmp.path}/store`, backend });
      try {
        await makeBase(`${tmp.path}/base`);
        const tar = await gnuTar(`${tmp.path}/base`);
        await store.applyDiff("base", undefined, tar);
        const cut = tar.subarray(0, 512 * 5 + 100);
        await assert.rejects(
          store.applyDiff("broken", "base", cut),
          InvalidArchive,
        );
        assert.equal(await store.exists("broken"), false);
        assert.deepEqual((await store.list()).map((l) => l.id), ["base"]);
        const staging = await Array.fromAsync(
          Deno.readDir(`${tmp.path}/store/staging`),
        );
        assert.deepEqual(staging, []);
      } finally {
        await store.cleanup();
        store.close();
      }
    },
  );
}

privilegedTest(
  `"" and null mean "no parent", as moby's callers pass them`,
  async () => {
    await using tmp = await tempDir();
    const store = await openStore({
      root: `${tmp.path}/store`,
      backend: "overlay",
    });
    try {
      await store.create("a", "");
      await store.createReadWrite("b", null);
      await makeBase(`${tmp.path}/base`);
      await store.applyDiff("c", "", await gnuTar(`${tmp.path}/base`));
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
    } finally {
      await store.cleanup();
      store.close();
    }
  },
);
