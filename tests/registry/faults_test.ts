/**
 * Faults between the client and the real registry, injected by a proxy on
 * 127.0.0.1 that forwards to it: a blob cut halfway (resumed with Range, or
 * restarted where ranges are not served), 503 once, 429 with Retry-After,
 * endless 503 (bounded tries), wrong bytes (refused), an oversize manifest,
 * and redirects (followed without credentials to another host; refused to
 * plain HTTP off loopback).
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  DigestMismatch,
  InsecureRegistry,
  RegistryError,
} from "../../src/errors.ts";
import { parseReference, RegistryClient } from "../../src/registry/mod.ts";
import { digestOf, OCI_MANIFEST } from "../../src/image/mod.ts";
import { startRegistry } from "./_registry.ts";
import { startProxy } from "./_proxy.ts";
import { blobOf, collect, manifestFor, seedImage } from "./_data.ts";
import { sameBytes } from "../_bytes.ts";

const USER = "bob";
const PASSWORD = "fault-test-pw";

Deno.test("faults through a proxy in front of the registry", async (t) => {
  const reg = await startRegistry({
    htpasswd: { user: USER, password: PASSWORD },
  });
  const credentials = () =>
    Promise.resolve({ username: USER, password: PASSWORD });
  const direct = new RegistryClient({ credentials });
  const proxy = startProxy(reg.url);
  // Quick backoff: the tests count requests, they do not time them.
  const client = new RegistryClient({
    credentials,
    baseDelayMs: 10,
    maxDelayMs: 50,
  });
  const layer = blobOf(1_000_000, 21);
  const config = blobOf(500, 22);
  const manifest = manifestFor(OCI_MANIFEST, config, [layer]);
  const blobPath = `/v2/app/blobs/${layer.digest}`;
  // Faults hit authenticated requests only (a new client's first is anonymous: 401).
  const isBlobGet = (r: Request) =>
    r.method === "GET" && new URL(r.url).pathname === blobPath &&
    r.headers.has("authorization");
  const isManifestGet = (r: Request) =>
    r.method === "GET" && new URL(r.url).pathname.includes("/manifests/");
  const via = `${proxy.host}/app`;
  const blobGets = () =>
    proxy.seen.filter((s) =>
      s.method === "GET" && s.path === blobPath && s.auth
    );
  try {
    await seedImage(direct, `${reg.host}/app`, "v1", config, [layer]);

    await t.step("a blob cut halfway resumes with Range", async () => {
      proxy.seen.length = 0;
      let cut = false;
      proxy.fault = (r) => {
        if (isBlobGet(r) && !cut) {
          cut = true;
          return { kind: "cut" };
        }
        return { kind: "forward" };
      };
      const got = await collect(client.getBlob(via, layer.digest, layer.size));
      assert.ok(sameBytes(got, layer.bytes));
      const gets = blobGets().filter((s) => s.auth);
      assert.equal(gets.length, 2);
      assert.equal(gets[0].range, null);
      assert.equal(gets[1].range, `bytes=${layer.size >> 1}-`);
    });

    await t.step(
      "without range support the download restarts (and skips what it delivered)",
      async () => {
        proxy.seen.length = 0;
        proxy.stripRanges = true;
        let cut = false;
        proxy.fault = (r) => {
          if (isBlobGet(r) && !cut) {
            cut = true;
            return { kind: "cut", at: 333_333 };
          }
          return { kind: "forward" };
        };
        try {
          const got = await collect(
            client.getBlob(via, layer.digest, layer.size),
          );
          assert.ok(sameBytes(got, layer.bytes));
          assert.deepEqual(blobGets().map((s) => s.range), [null, null]);
        } finally {
          proxy.stripRanges = false;
        }
      },
    );

    await t.step(
      "a connection cut every time fails after the bounded tries",
      async () => {
        proxy.seen.length = 0;
        proxy.fault = (r) =>
          isBlobGet(r) ? { kind: "cut", at: 1000 } : { kind: "forward" };
        const c = new RegistryClient({
          credentials,
          baseDelayMs: 1,
          maxDelayMs: 5,
          blobTries: 3,
        });
        await assert.rejects(
          collect(c.getBlob(via, layer.digest, layer.size)),
          (e: Error) => {
            assert.ok(e instanceof RegistryError);
            assert.match(e.message, /after 3 connections/);
            return true;
          },
        );
        assert.equal(blobGets().length, 3);
        c.close();
      },
    );

    await t.step("503 once is retried", async () => {
      proxy.seen.length = 0;
      let n = 0;
      proxy.fault = (r) =>
        isManifestGet(r) && n++ === 0
          ? { kind: "status", status: 503 }
          : { kind: "forward" };
      const m = await client.getManifest(parseReference(`${via}:v1`));
      assert.deepEqual(m.bytes, manifest);
      assert.equal(
        proxy.seen.filter((s) => s.path.includes("/manifests/")).length >= 2,
        true,
      );
      assert.equal(n, 2);
    });

    await t.step(
      "429 with Retry-After is waited for, then retried",
      async () => {
        let n = 0;
        proxy.fault = (r) =>
          isManifestGet(r) && n++ === 0
            ? { kind: "status", status: 429, headers: { "retry-after": "1" } }
            : { kind: "forward" };
        const m = await client.getManifest(parseReference(`${via}:v1`));
        assert.equal(m.digest, digestOf(manifest));
        assert.equal(n, 2);
      },
    );

    await t.step(
      "a Retry-After beyond the cap fails at once, naming it",
      async () => {
        let n = 0;
        proxy.fault = (r) => {
          if (!isManifestGet(r)) return { kind: "forward" };
          n++;
          return {
            kind: "status",
            status: 429,
            headers: { "retry-after": "3600" },
          };
        };
        await assert.rejects(
          client.getManifest(parseReference(`${via}:v1`)),
          /retry after 3600 s/,
        );
        assert.equal(n, 1);
      },
    );

    await t.step(
      "endless 503: bounded tries, then one clear error",
      async () => {
        let n = 0;
        proxy.fault = (r) => {
          if (!isManifestGet(r)) return { kind: "forward" };
          n++;
          return { kind: "status", status: 503 };
        };
        const c = new RegistryClient({
          credentials,
          baseDelayMs: 1,
          maxDelayMs: 5,
          tries: 3,
        });
        await assert.rejects(
          c.getManifest(parseReference(`${via}:v1`)),
          (e: Error) => {
            assert.ok(e instanceof RegistryError);
            assert.equal(e.status, 503);
            return true;
          },
        );
        assert.equal(n, 3);
        c.close();
      },
    );

    await t.step(
      "uploads: a 503 on a chunk is retried; a lost reply to the final PUT is found by HEAD",
      async () => {
        const b = blobOf(200_000, 23);
        let patches = 0;
        proxy.fault = (r) =>
          r.method === "PATCH" && r.headers.has("authorization") &&
            patches++ === 1
            ? { kind: "status", status: 503 }
            : { kind: "forward" };
        assert.equal(
          (await client.pushBlob(via, b, b.bytes, { chunkSize: 50_000 })).how,
          "uploaded",
        );
        assert.equal(patches, 5, "4 chunks, one of them sent twice");
        const c = blobOf(30_000, 24);
        let puts = 0;
        proxy.fault = (r) =>
          r.method === "PUT" && r.headers.has("authorization") && puts++ === 0
            ? { kind: "lose-reply", status: 502 }
            : { kind: "forward" };
        assert.equal((await client.pushBlob(via, c, c.bytes)).how, "uploaded");
        assert.ok(puts >= 2);
        assert.deepEqual(
          await collect(direct.getBlob(`${reg.host}/app`, c.digest, c.size)),
          c.bytes,
        );
      },
    );

    await t.step("wrong bytes are refused (blob and manifest)", async () => {
      proxy.fault = (r) =>
        isBlobGet(r) || isManifestGet(r)
          ? { kind: "corrupt" }
          : { kind: "forward" };
      await assert.rejects(
        collect(client.getBlob(via, layer.digest, layer.size)),
        DigestMismatch,
      );
      // By tag: the registry's Docker-Content-Digest catches it; by digest: the reference.
      await assert.rejects(
        client.getManifest(parseReference(`${via}:v1`)),
        DigestMismatch,
      );
      await assert.rejects(
        client.getManifest(parseReference(`${via}@${digestOf(manifest)}`)),
        DigestMismatch,
      );
    });

    await t.step("a manifest reply over 4 MiB is refused", async () => {
      proxy.fault = (r) =>
        isManifestGet(r)
          ? {
            kind: "status",
            status: 200,
            headers: { "content-type": OCI_MANIFEST },
            body: new Uint8Array((4 << 20) + 10).fill(0x20),
          }
          : { kind: "forward" };
      await assert.rejects(
        client.getManifest(parseReference(`${via}:v1`)),
        /larger than 4194304 bytes/,
      );
    });

    await t.step(
      "a blob redirect to another host is followed without credentials",
      async () => {
        // A CDN (as S3 or CloudFront behind Docker Hub) on "localhost", another
        // origin than 127.0.0.1: serves the blob and records any Authorization.
        const cdnSeen: boolean[] = [];
        const cdn = Deno.serve({
          hostname: "127.0.0.1",
          port: 0,
          onListen() {},
        }, (req) => {
          cdnSeen.push(req.headers.has("authorization"));
          return new Response(layer.bytes);
        });
        proxy.fault = (r) =>
          isBlobGet(r)
            ? { kind: "redirect", to: `http://localhost:${cdn.addr.port}` }
            : { kind: "forward" };
        try {
          const got = await collect(
            client.getBlob(via, layer.digest, layer.size),
          );
          assert.ok(sameBytes(got, layer.bytes));
          assert.deepEqual(cdnSeen, [false]);
        } finally {
          await cdn.shutdown();
        }
      },
    );

    await t.step(
      "a redirect to plain HTTP off loopback is refused",
      async () => {
        proxy.fault = (r) =>
          isBlobGet(r)
            ? { kind: "redirect", to: "http://cdn.invalid" }
            : { kind: "forward" };
        await assert.rejects(
          collect(client.getBlob(via, layer.digest, layer.size)),
          InsecureRegistry,
        );
      },
    );
  } finally {
    client.close();
    direct.close();
    await proxy.stop();
    await reg.stop();
  }
});
