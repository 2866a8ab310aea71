/**
 * Tar-split records and crashes: a layer applied by a process that is
 * killed with SIGKILL while its record is being written, after the record
 * is complete but before it is published, or (as the state such a crash
 * leaves) after it is published but before the commit point, never leaves a
 * record that is used. The rule: a record is written and fsynced in the
 * layer's staging dir and renamed into `tarsplit/<id>` before `layers/<id>`
 * (the commit point), so the next open sweeps a staging dir or an orphan
 * record, and the layer does not exist; applying it again records afresh. A
 * committed layer whose record is damaged anyway (a torn disk) is refused
 * by `exactDiff` with LayerNotExact, the error on which `saveImage` exports
 * the layer afresh and names it.
 */

import assert from "node:assert/strict";
import { LayerNotExact, openStore } from "../../../mod.ts";
import { tarHeader, TarWriter } from "../../../src/archive/tar/mod.ts";
import { exists } from "../../../src/_fs.ts";
import { findLeftovers } from "../../../src/store/recovery.ts";
import { StoreLayout } from "../../../src/layout.ts";
import { vfsBackend } from "../../../src/backends/vfs.ts";
import { tempDir } from "../../_privileged.ts";
import { sameBytes } from "../../_bytes.ts";

const CHILD = new URL("./_apply_child.ts", import.meta.url).pathname;

/** A tar of `files` files of 0-3 KiB in 20 dirs, seeded by `seed`, with trailing zeros. */
async function layerTarBytes(files: number, seed: number): Promise<Uint8Array> {
  const w = new TarWriter();
  const out = new Response(w.readable).bytes();
  for (let d = 0; d < 20; d++) {
    await w.add(tarHeader({ name: `d${d}/`, type: "dir", mode: 0o755 }));
  }
  for (let i = 0; i < files; i++) {
    const size = (i * 7919 + seed) % 3072;
    const body = new Uint8Array(size).map((_, k) => (k + i + seed) & 0xff);
    await w.add(tarHeader({ name: `d${i % 20}/f${i}`, size }), body);
  }
  await w.close();
  const tar = await out;
  const padded = new Uint8Array(tar.length + 10240);
  padded.set(tar);
  return padded;
}

/** The staging dirs of the store at `root`. */
async function stagings(root: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${root}/staging`)) {
    out.push(`${root}/staging/${e.name}`);
  }
  return out;
}

/** Polls `cond` every 10 ms (up to 30 s: a busy machine), else fails naming `what`. */
async function until(what: string, cond: () => Promise<boolean>) {
  for (let i = 0; i < 3000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The child applying layer `id` from its stdin, once it printed "ready". */
async function applying(root: string, id: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", CHILD, root, id],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const out = child.stdout.getReader();
  const first = await out.read();
  assert.equal(new TextDecoder().decode(first.value), "ready\n");
  out.releaseLock();
  const stdin = child.stdin.getWriter();
  return {
    child,
    write: (b: Uint8Array) => stdin.write(b),
    end: () => stdin.close(),
    async kill() {
      child.kill("SIGKILL");
      await child.status;
      await stdin.close().catch(() => {});
      await child.stdout.cancel().catch(() => {});
    },
  };
}

/** After the crash: the open sweeps it and `id` does not exist, nor any part of it. */
async function assertGone(root: string, id: string): Promise<void> {
  const store = await openStore({ root });
  try {
    assert.deepEqual(
      await findLeftovers(new StoreLayout(root), vfsBackend),
      [],
    );
    assert.deepEqual(await stagings(root), []);
    assert.equal((await store.list()).some((l) => l.id === id), false);
    for (const d of ["layers", "diff", "meta", "tarsplit"]) {
      assert.equal(await exists(`${root}/${d}/${id}`), false, `${d}/${id}`);
    }
    // Applied again, the layer records afresh and exports exactly.
    const again = await layerTarBytes(300, 7);
    await store.applyDiff(id, undefined, again);
    const rebuilt = await new Response(await store.exactDiff(id)).bytes();
    assert.ok(sameBytes(rebuilt, again));
    await store.remove(id);
  } finally {
    store.close();
  }
}

Deno.test({
  name:
    "tarsplit crash: kill -9 while the record is written: the staging dir is swept, no record is kept",
  sanitizeResources: false,
  async fn() {
    await using tmp = await tempDir();
    const root = `${tmp.path}/s`;
    (await openStore({ root, backend: "vfs" })).close();
    const tar = await layerTarBytes(3000, 1);
    for (const part of [0.1, 0.5, 0.9]) {
      const p = await applying(root, "x");
      try {
        await p.write(tar.subarray(0, Math.floor(tar.length * part)));
        // The child has made its staging dir and started the record.
        await until("the record in staging", async () => {
          for (const s of await stagings(root)) {
            if (await exists(`${s}/tarsplit`)) return true;
          }
          return false;
        });
      } finally {
        await p.kill();
      }
      await assertGone(root, "x");
    }
  },
});

Deno.test({
  name:
    "tarsplit crash: kill -9 with the record complete but not published: the layer does not exist",
  sanitizeResources: false,
  async fn() {
    await using tmp = await tempDir();
    const root = `${tmp.path}/s`;
    (await openStore({ root, backend: "vfs" })).close();
    const tar = await layerTarBytes(2000, 2);
    const p = await applying(root, "x");
    let lock: Deno.FsFile | undefined;
    try {
      await p.write(tar.subarray(0, 4096));
      await until(
        "the staging dir",
        async () => (await stagings(root)).length > 0,
      );
      // Holding the store lock stops the child at its publishing step.
      lock = await Deno.open(`${root}/run/lock`, { read: true, write: true });
      await lock.lock(true);
      await p.write(tar.subarray(4096));
      await p.end();
      const [staging] = await stagings(root);
      // The record is complete (it ends with the tar's length and sha256).
      await until("the complete record", async () => {
        try {
          const b = await Deno.readFile(`${staging}/tarsplit`);
          return b.length > 64 && (await recordComplete(`${staging}/tarsplit`));
        } catch {
          return false;
        }
      });
      assert.equal(await exists(`${root}/tarsplit/x`), false);
    } finally {
      await p.kill();
      lock?.close();
    }
    await assertGone(root, "x");
  },
});

/** True when the record file at `path` decodes to its end op. */
async function recordComplete(path: string): Promise<boolean> {
  const { decodeRecord } = await import(
    "../../../src/archive/tarsplit/_format.ts"
  );
  using f = await Deno.open(path);
  try {
    for await (const op of decodeRecord(f)) if (op.op === "end") return true;
  } catch { /* still being written */ }
  return false;
}

Deno.test({
  name:
    "tarsplit crash: a record published before the commit point is swept with its layer's parts; reapplying records afresh",
  sanitizeResources: false,
  async fn() {
    await using tmp = await tempDir();
    const root = `${tmp.path}/s`;
    const old = await layerTarBytes(200, 3);
    {
      const store = await openStore({ root, backend: "vfs" });
      await store.applyDiff("x", undefined, old);
      store.close();
    }
    // The state a crash between publishRecord and writeParents leaves: a
    // complete record and the diff dir, but no layers/x (the commit point).
    await Deno.remove(`${root}/layers/x`);
    await assertGone(root, "x");
  },
});

Deno.test({
  name:
    "tarsplit crash: a committed layer with a torn record is refused by exactDiff (LayerNotExact), its diff still works",
  sanitizeResources: false,
  async fn() {
    await using tmp = await tempDir();
    const root = `${tmp.path}/s`;
    const tar = await layerTarBytes(1500, 4);
    const store = await openStore({ root, backend: "vfs" });
    try {
      await store.applyDiff("x", undefined, tar);
      const rec = await Deno.readFile(`${root}/tarsplit/x`);
      for (const keep of [rec.length - 1, Math.floor(rec.length / 2), 30]) {
        await Deno.writeFile(`${root}/tarsplit/x`, rec.subarray(0, keep));
        await assert.rejects(
          new Response(await store.exactDiff("x")).bytes(),
          (e) =>
            e instanceof LayerNotExact && /record/.test(e.message) &&
            /"x"/.test(e.message),
        );
      }
      // A fresh export still has every file.
      const fresh = await new Response(store.diff("x")).bytes();
      assert.ok(fresh.length > 1500 * 512);
      await Deno.writeFile(`${root}/tarsplit/x`, rec);
      assert.ok(
        sameBytes(await new Response(await store.exactDiff("x")).bytes(), tar),
      );
    } finally {
      store.close();
    }
  },
});
