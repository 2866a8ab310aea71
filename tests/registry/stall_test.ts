/**
 * Stalled connections, through the fault proxy in front of the real
 * registry: a blob that stops sending resumes with Range; one that stalls
 * every time, and a request that is never answered, fail with a
 * RegistryError after the bounded tries instead of hanging; a stalled
 * upload fails the same way. Time on the caller's side (a slow reader, an
 * upload source that takes long per piece) and a reply that trickles are
 * not stalls.
 *
 * @module
 */

import assert from "node:assert/strict";
import { RegistryError } from "../../src/errors.ts";
import {
  parseReference,
  RegistryClient,
  type RegistryClientOptions,
} from "../../src/registry/mod.ts";
import { digestOf } from "../../src/image/mod.ts";
import { startRegistry } from "./_registry.ts";
import { startProxy } from "./_proxy.ts";
import { blobOf, collect, seedImage } from "./_data.ts";
import { concat, sameBytes } from "../_bytes.ts";

const IDLE_MS = 300;

/** Fails instead of hanging the test run when `p` never settles. */
function hangGuard<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: still waiting after 30 s (it hangs)`)),
      30_000,
    );
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A client with quick backoff and the tests' idle time. */
const quickClient = (o: RegistryClientOptions = {}) =>
  new RegistryClient({
    baseDelayMs: 1,
    maxDelayMs: 5,
    idleTimeoutMs: IDLE_MS,
    ...o,
  });

/** `p` rejects with a RegistryError whose message matches every pattern. */
function failsWith(
  p: Promise<unknown>,
  what: string,
  ...patterns: RegExp[]
): Promise<void> {
  return hangGuard(
    assert.rejects(p, (e: Error) => {
      assert.ok(e instanceof RegistryError, String(e));
      for (const re of patterns) assert.match(e.message, re);
      return true;
    }),
    what,
  );
}

Deno.test("stalled connections fail or resume; slow callers are not stalls", async (t) => {
  const reg = await startRegistry();
  const direct = new RegistryClient();
  const proxy = startProxy(reg.url);
  const client = quickClient();
  const layer = blobOf(1_000_000, 31);
  const config = blobOf(300, 32);
  const blobPath = `/v2/app/blobs/${layer.digest}`;
  const isBlobGet = (r: Request) =>
    r.method === "GET" && new URL(r.url).pathname === blobPath;
  const isManifestGet = (r: Request) =>
    r.method === "GET" && new URL(r.url).pathname.includes("/manifests/");
  const blobGets = () =>
    proxy.seen.filter((s) => s.method === "GET" && s.path === blobPath);
  const via = `${proxy.host}/app`;
  try {
    await seedImage(direct, `${reg.host}/app`, "v1", config, [layer]);

    await t.step("a blob that stops sending resumes with Range", async () => {
      proxy.seen.length = 0;
      let stalled = false;
      proxy.fault = (r) => {
        if (isBlobGet(r) && !stalled) {
          stalled = true;
          return { kind: "stall", at: 400_000 };
        }
        return { kind: "forward" };
      };
      const got = await hangGuard(
        collect(client.getBlob(via, layer.digest, layer.size)),
        "the stalled download",
      );
      assert.ok(sameBytes(got, layer.bytes));
      assert.deepEqual(blobGets().map((s) => s.range), [
        null,
        "bytes=400000-",
      ]);
    });

    await t.step(
      "a blob that stalls every time fails after blobTries, naming the stall",
      async () => {
        proxy.seen.length = 0;
        proxy.fault = (r) =>
          isBlobGet(r) ? { kind: "stall", at: 1000 } : { kind: "forward" };
        const c = quickClient({ blobTries: 3 });
        try {
          await failsWith(
            collect(c.getBlob(via, layer.digest, layer.size)),
            "the always-stalling download",
            /after 3 connections/,
            /no byte of its reply for 0\.3 s: the connection stalled/,
          );
          assert.equal(blobGets().length, 3);
        } finally {
          c.close();
        }
      },
    );

    await t.step(
      "a request never answered is retried, then fails with one clear error",
      async () => {
        let n = 0;
        proxy.fault = (r) => {
          if (!isManifestGet(r)) return { kind: "forward" };
          n++;
          return { kind: "mute" };
        };
        const c = quickClient({ tries: 2 });
        try {
          await failsWith(
            c.getManifest(parseReference(`${via}:v1`)),
            "the unanswered request",
            /no reply in 0\.3 s\) after 2 tries/,
          );
          assert.equal(n, 2);
        } finally {
          c.close();
        }
      },
    );

    await t.step("a caller slow between reads is not stalled", async () => {
      proxy.seen.length = 0;
      proxy.fault = () => ({ kind: "forward" });
      const parts: Uint8Array[] = [];
      let reads = 0;
      for await (const p of client.getBlob(via, layer.digest, layer.size)) {
        parts.push(p);
        // Away for longer than the idle time, three times.
        if (reads++ < 3) await sleep(IDLE_MS * 2);
      }
      assert.ok(sameBytes(concat(parts), layer.bytes));
      assert.equal(blobGets().length, 1);
    });

    await t.step("a reply that trickles is not stalled", async () => {
      proxy.seen.length = 0;
      proxy.fault = (r) =>
        isBlobGet(r)
          ? { kind: "slow", chunk: 100_000, delayMs: IDLE_MS / 3 }
          : { kind: "forward" };
      const got = await collect(client.getBlob(via, layer.digest, layer.size));
      assert.ok(sameBytes(got, layer.bytes));
      // ~3 s of trickle, ten idle times: one connection all along.
      assert.equal(blobGets().length, 1);
    });

    await t.step(
      "an upload whose source is slow per piece is not stalled",
      async () => {
        proxy.fault = () => ({ kind: "forward" });
        const blob = blobOf(300_000, 33);
        let pieces = 0;
        const source = () =>
          new ReadableStream<Uint8Array>({
            async pull(c) {
              const at = pieces++ * 100_000;
              if (at >= blob.size) return c.close();
              await sleep(IDLE_MS * 2); // compressing, say
              c.enqueue(blob.bytes.slice(at, at + 100_000));
            },
          });
        const r = await hangGuard(
          client.pushBlob(via, blob, source),
          "the slow-source upload",
        );
        assert.equal(r.how, "uploaded");
        assert.ok(await direct.hasBlob(`${reg.host}/app`, blob.digest));
      },
    );

    await t.step(
      "an upload the registry never answers fails instead of hanging",
      async () => {
        const blob = blobOf(200_000, 34);
        let puts = 0;
        proxy.fault = (r) => {
          if (
            r.method !== "PUT" || !new URL(r.url).pathname.includes("/uploads/")
          ) {
            return { kind: "forward" };
          }
          puts++;
          return { kind: "mute" };
        };
        const c = quickClient({ tries: 2 });
        try {
          // 200 KB of bytes: one idle time to send them, one for the reply.
          await failsWith(
            c.pushBlob(via, blob, blob.bytes),
            "the unanswered upload",
            /no reply in 0\.6 s/,
          );
          assert.ok(puts >= 2, `${puts} PUTs`);
          assert.equal(
            await direct.hasBlob(`${reg.host}/app`, blob.digest),
            false,
          );
        } finally {
          c.close();
        }
      },
    );
  } finally {
    client.close();
    direct.close();
    await proxy.stop();
    await reg.stop();
  }
});

Deno.test("idleTimeoutMs: 0 waits as long as it takes", async () => {
  const reg = await startRegistry();
  const proxy = startProxy(reg.url);
  const config = blobOf(300, 35);
  const direct = new RegistryClient();
  const strict = new RegistryClient({ idleTimeoutMs: 200, tries: 1 });
  const patient = new RegistryClient({ idleTimeoutMs: 0 });
  const { promise: later, resolve } = Promise.withResolvers<void>();
  const hold = setTimeout(resolve, 1000);
  try {
    await direct.pushBlob(`${reg.host}/app`, config, config.bytes);
    // Every request waits until a second has gone by.
    proxy.fault = () => ({ kind: "wait", until: later });
    const fetchIt = (c: RegistryClient) =>
      collect(c.getBlob(`${proxy.host}/app`, config.digest, config.size));
    const [short, long] = await Promise.allSettled([
      fetchIt(strict),
      fetchIt(patient),
    ]);
    assert.equal(short.status, "rejected");
    assert.ok(
      short.status === "rejected" && short.reason instanceof RegistryError &&
        /no reply in 0\.2 s/.test(short.reason.message),
      String(short.status === "rejected" && short.reason),
    );
    assert.equal(long.status, "fulfilled");
    assert.equal(
      long.status === "fulfilled" && digestOf(long.value),
      config.digest,
    );
  } finally {
    clearTimeout(hold);
    resolve();
    strict.close();
    patient.close();
    direct.close();
    await proxy.stop();
    await reg.stop();
  }
});
