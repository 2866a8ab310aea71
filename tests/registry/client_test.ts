/**
 * The client against the real registry over plain HTTP on 127.0.0.1: blobs
 * (monolithic, chunked, from streams, HEAD, cross-repository mount, verified
 * downloads), manifests (OCI and Docker v2, by tag and digest, HEAD), and
 * what is refused (wrong digests, oversize manifests, non-loopback plain
 * HTTP), plus aborts.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  DigestMismatch,
  InsecureRegistry,
  RegistryError,
  RegistryNotFound,
} from "../../src/errors.ts";
import { parseReference, RegistryClient } from "../../src/registry/mod.ts";
import {
  digestOf,
  DOCKER_MANIFEST,
  OCI_MANIFEST,
} from "../../src/image/mod.ts";
import { startRegistry } from "./_registry.ts";
import { blobOf, collect, manifestFor, noCredentials } from "./_data.ts";

Deno.test("registry client over plain HTTP", async (t) => {
  const reg = await startRegistry();
  const client = new RegistryClient({ credentials: noCredentials });
  try {
    const repo = `${reg.host}/test/app`;
    const layer = blobOf(300_000, 1);
    const config = blobOf(1_000, 2);

    await t.step("a missing blob is absent", async () => {
      assert.equal(await client.hasBlob(repo, layer.digest), false);
    });

    await t.step(
      "monolithic push, HEAD finds it, download verified",
      async () => {
        const r = await client.pushBlob(repo, layer, layer.bytes);
        assert.equal(r.how, "uploaded");
        assert.equal(await client.hasBlob(repo, layer.digest), true);
        const got = await collect(
          client.getBlob(repo, layer.digest, layer.size),
        );
        assert.deepEqual(got, layer.bytes);
        // A second push only HEADs.
        assert.equal(
          (await client.pushBlob(repo, layer, layer.bytes)).how,
          "exists",
        );
      },
    );

    await t.step("chunked push from a stream (uneven last chunk)", async () => {
      const b = blobOf(250_001, 3);
      const r = await client.pushBlob(
        repo,
        b,
        () => ReadableStream.from(pieces(b.bytes, 7_777)),
        {
          chunkSize: 65_536,
        },
      );
      assert.equal(r.how, "uploaded");
      assert.deepEqual(
        await collect(client.getBlob(repo, b.digest, b.size)),
        b.bytes,
      );
    });

    await t.step(
      "chunked push from bytes and monolithic from a stream",
      async () => {
        const a = blobOf(100_000, 4);
        assert.equal(
          (await client.pushBlob(repo, a, a.bytes, { chunkSize: 30_000 })).how,
          "uploaded",
        );
        const b = blobOf(50_000, 5);
        assert.equal(
          (await client.pushBlob(repo, b, () => ReadableStream.from([b.bytes])))
            .how,
          "uploaded",
        );
        assert.equal(await client.hasBlob(repo, a.digest), true);
        assert.equal(await client.hasBlob(repo, b.digest), true);
      },
    );

    await t.step(
      "a source whose bytes are not the digest is refused before it is stored",
      async () => {
        const b = blobOf(10_000, 6);
        const wrong = blobOf(10_000, 7).bytes;
        await assert.rejects(client.pushBlob(repo, b, wrong), DigestMismatch);
        await assert.rejects(
          client.pushBlob(repo, b, () => ReadableStream.from([wrong])),
          DigestMismatch,
        );
        await assert.rejects(
          client.pushBlob(repo, b, () => ReadableStream.from([wrong]), {
            chunkSize: 4096,
          }),
          DigestMismatch,
        );
        assert.equal(await client.hasBlob(repo, b.digest), false);
      },
    );

    await t.step("cross-repository mount", async () => {
      const other = `${reg.host}/test/other`;
      const r = await client.pushBlob(other, layer, () => {
        throw new Error("a mount must not read the source");
      }, { mountFrom: ["test/app"] });
      assert.equal(r.how, "mounted");
      assert.equal(await client.hasBlob(other, layer.digest), true);
      // Not mountable from a repository without it: uploaded instead.
      const c = blobOf(2_000, 8);
      const third = `${reg.host}/test/third`;
      assert.equal(
        (await client.pushBlob(third, c, c.bytes, {
          mountFrom: ["test/nothing"],
        })).how,
        "uploaded",
      );
    });

    await t.step(
      "a download of the wrong size or digest is refused",
      async () => {
        // The registry serves the real bytes; the caller's size or digest is wrong.
        await assert.rejects(
          collect(client.getBlob(repo, layer.digest, layer.size - 1)),
          DigestMismatch,
        );
        await assert.rejects(
          collect(client.getBlob(repo, digestOf(new Uint8Array([1])), 1)),
          RegistryNotFound,
        );
      },
    );

    for (const mediaType of [OCI_MANIFEST, DOCKER_MANIFEST]) {
      await t.step(`manifest put and got (${mediaType})`, async () => {
        await client.pushBlob(repo, config, config.bytes);
        const bytes = manifestFor(mediaType, config, [layer]);
        const tag = mediaType === OCI_MANIFEST ? "oci" : "docker";
        const ref = parseReference(`${repo}:${tag}`);
        const digest = await client.putManifest(ref, mediaType, bytes);
        assert.equal(digest, digestOf(bytes));
        const m = await client.getManifest(ref);
        assert.equal(m.mediaType, mediaType);
        assert.equal(m.digest, digest);
        assert.deepEqual(m.bytes, bytes);
        const byDigest = await client.getManifest(
          parseReference(`${repo}@${digest}`),
        );
        assert.deepEqual(byDigest.bytes, bytes);
        const head = await client.headManifest(ref);
        assert.deepEqual(head, { mediaType, digest, size: bytes.length });
      });
    }

    await t.step(
      "a manifest fetched by a digest it does not have is refused",
      async () => {
        const bytes = manifestFor(OCI_MANIFEST, config, [layer]);
        const ref = parseReference(`${repo}:oci`);
        await client.putManifest(ref, OCI_MANIFEST, bytes);
        // Pushing under a digest that is not the bytes' is refused locally.
        const wrong = parseReference(
          `${repo}@${digestOf(new Uint8Array([9]))}`,
        );
        await assert.rejects(
          client.putManifest(wrong, OCI_MANIFEST, bytes),
          DigestMismatch,
        );
        await assert.rejects(client.getManifest(wrong), RegistryNotFound);
        assert.equal(await client.headManifest(wrong), undefined);
      },
    );

    await t.step("a missing tag is RegistryNotFound naming it", async () => {
      const ref = parseReference(`${repo}:nope`);
      const err = await client.getManifest(ref).then(() => undefined, (e) => e);
      assert.ok(err instanceof RegistryNotFound);
      assert.match(
        err.message,
        new RegExp(`${reg.host}/test/app:nope not found`),
      );
      assert.match(err.message, /check the name and tag/);
    });

    await t.step(
      "a manifest over 4 MiB is refused on the way out",
      async () => {
        const big = new Uint8Array((4 << 20) + 1).fill(0x20);
        await assert.rejects(
          client.putManifest(parseReference(`${repo}:big`), OCI_MANIFEST, big),
          RegistryError,
        );
      },
    );

    await t.step(
      "an aborted download stops with the signal's reason",
      async () => {
        const ac = new AbortController();
        const stream = client.getBlob(repo, layer.digest, layer.size, {
          signal: ac.signal,
        });
        const reader = stream.getReader();
        await reader.read();
        ac.abort(new Error("stop"));
        await assert.rejects(
          (async () => {
            for (let i = 0; i < 1000; i++) {
              if ((await reader.read()).done) return;
            }
          })(),
          /stop/,
        );
        const aborted = AbortSignal.abort(new Error("before"));
        await assert.rejects(
          client.hasBlob(repo, layer.digest, { signal: aborted }),
          /before/,
        );
      },
    );
  } finally {
    client.close();
    await reg.stop();
  }
});

Deno.test("plain HTTP to a non-loopback registry is refused before any connection", async () => {
  const client = new RegistryClient({
    credentials: noCredentials,
    http: ["registry.invalid"],
  });
  try {
    await assert.rejects(
      client.getManifest(parseReference("registry.invalid/app:1")),
      InsecureRegistry,
    );
    // Listed as insecure, it would be allowed (and fail to resolve: a network error).
    const listed = new RegistryClient({
      credentials: noCredentials,
      http: ["registry.invalid"],
      insecure: ["registry.invalid"],
      tries: 1,
    });
    await assert.rejects(
      listed.getManifest(parseReference("registry.invalid/app:1")),
      RegistryError,
    );
    listed.close();
  } finally {
    client.close();
  }
});

function* pieces(bytes: Uint8Array, n: number): Generator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += n) yield bytes.slice(i, i + n);
}

Deno.test("Docker Hub is named docker.io (not its API host) in errors", async () => {
  // Refused before any connection: no network is touched.
  const client = new RegistryClient({
    credentials: noCredentials,
    http: ["docker.io"],
  });
  try {
    const e = await client.getManifest(parseReference("alpine")).then(
      () => undefined,
      (x) => x,
    );
    assert.ok(e instanceof InsecureRegistry);
    assert.equal(e.registry, "docker.io");
  } finally {
    client.close();
  }
});
