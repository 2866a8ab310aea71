/**
 * Interoperability with skopeo through the real registry: an OCI layout
 * the test makes, copied in by skopeo, is read by the client with the
 * digests skopeo reports; what the client pushes (Docker v2 and OCI
 * manifests) skopeo reads back byte for byte and copies out to an OCI
 * layout with the same digests.
 *
 * @module
 */

import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { parseReference, RegistryClient } from "../../src/registry/mod.ts";
import {
  digestOf,
  DOCKER_MANIFEST,
  OCI_INDEX,
  OCI_MANIFEST,
} from "../../src/image/mod.ts";
import { run, startRegistry } from "./_registry.ts";
import { type Blob, collect, manifestFor, noCredentials } from "./_data.ts";

const encoder = new TextEncoder();

function blob(bytes: Uint8Array): Blob {
  const b = new Uint8Array(bytes);
  return { bytes: b, digest: digestOf(b), size: b.length };
}

/** A gzip layer with one file, and its config. */
async function smallImage(): Promise<{ layer: Blob; config: Blob }> {
  // Built with GNU tar: independent of layerfs's own tar writer.
  const dir = await Deno.makeTempDir({ prefix: "layerfs-interop-src-" });
  try {
    await Deno.writeTextFile(`${dir}/hello.txt`, "hello from layerfs\n");
    await run("tar", [
      "--sort=name",
      "--mtime=@0",
      "--owner=0",
      "--group=0",
      "-C",
      dir,
      "-cf",
      `${dir}.tar`,
      "hello.txt",
    ]);
    const tar = await Deno.readFile(`${dir}.tar`);
    await Deno.remove(`${dir}.tar`);
    const layer = blob(gzipSync(tar));
    const config = blob(encoder.encode(JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: {},
      rootfs: { type: "layers", diff_ids: [digestOf(tar)] },
    })));
    return { layer, config };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function writeLayout(
  dir: string,
  blobs: Blob[],
  manifest: Blob,
  tag: string,
) {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  for (const b of [...blobs, manifest]) {
    await Deno.writeFile(`${dir}/blobs/sha256/${b.digest.slice(7)}`, b.bytes);
  }
  await Deno.writeTextFile(
    `${dir}/oci-layout`,
    '{"imageLayoutVersion":"1.0.0"}',
  );
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{
        mediaType: OCI_MANIFEST,
        digest: manifest.digest,
        size: manifest.size,
        annotations: { "org.opencontainers.image.ref.name": tag },
      }],
    }),
  );
}

const skopeo = (args: string[]) =>
  run("skopeo", ["--insecure-policy", ...args]);

Deno.test("skopeo interop", async (t) => {
  const reg = await startRegistry();
  const dir = await Deno.makeTempDir({ prefix: "layerfs-interop-" });
  const client = new RegistryClient({ credentials: noCredentials });
  const { layer, config } = await smallImage();
  try {
    await t.step(
      "skopeo copies an OCI layout in; the client reads it with skopeo's digests",
      async () => {
        const manifest = blob(manifestFor(OCI_MANIFEST, config, [layer]));
        await writeLayout(`${dir}/src`, [layer, config], manifest, "v1");
        await skopeo([
          "copy",
          "--dest-tls-verify=false",
          `oci:${dir}/src:v1`,
          `docker://${reg.host}/interop/in:v1`,
        ]);
        const raw = encoder.encode(
          await skopeo([
            "inspect",
            "--raw",
            "--tls-verify=false",
            `docker://${reg.host}/interop/in:v1`,
          ]),
        );
        const info = JSON.parse(
          await skopeo([
            "inspect",
            "--tls-verify=false",
            `docker://${reg.host}/interop/in:v1`,
          ]),
        );
        const m = await client.getManifest(
          parseReference(`${reg.host}/interop/in:v1`),
        );
        assert.equal(m.digest, info.Digest);
        assert.equal(m.digest, digestOf(raw));
        assert.equal(m.mediaType, OCI_MANIFEST);
        const doc = JSON.parse(new TextDecoder().decode(m.bytes));
        assert.deepEqual(
          info.Layers,
          doc.layers.map((l: { digest: string }) => l.digest),
        );
        for (const d of [doc.config, ...doc.layers]) {
          const bytes = await collect(
            client.getBlob(`${reg.host}/interop/in`, d.digest, d.size),
          );
          assert.equal(digestOf(bytes), d.digest);
        }
        assert.equal(doc.layers[0].digest, layer.digest);
      },
    );

    for (const mediaType of [DOCKER_MANIFEST, OCI_MANIFEST]) {
      await t.step(
        `the client pushes (${mediaType}); skopeo reads the same bytes and digests`,
        async () => {
          const repo = `${reg.host}/interop/out`;
          const tag = mediaType === OCI_MANIFEST ? "oci" : "docker";
          await client.pushBlob(repo, layer, layer.bytes, { chunkSize: 64 });
          await client.pushBlob(repo, config, config.bytes);
          const bytes = manifestFor(mediaType, config, [layer]);
          const digest = await client.putManifest(
            parseReference(`${repo}:${tag}`),
            mediaType,
            bytes,
          );
          const raw = encoder.encode(
            await skopeo([
              "inspect",
              "--raw",
              "--tls-verify=false",
              `docker://${repo}:${tag}`,
            ]),
          );
          assert.deepEqual(raw, bytes);
          const out = `${dir}/out-${tag}`;
          await skopeo([
            "copy",
            "--src-tls-verify=false",
            `docker://${repo}:${tag}`,
            `oci:${out}:${tag}`,
          ]);
          const index = JSON.parse(
            await Deno.readTextFile(`${out}/index.json`),
          );
          const stored = await Deno.readFile(
            `${out}/blobs/sha256/${index.manifests[0].digest.slice(7)}`,
          );
          const storedDoc = JSON.parse(new TextDecoder().decode(stored));
          // skopeo keeps the layer and config bytes (an OCI manifest is kept
          // whole; a Docker one is converted to OCI, so only its blobs are compared).
          if (mediaType === OCI_MANIFEST) {
            assert.equal(index.manifests[0].digest, digest);
          }
          assert.equal(storedDoc.layers[0].digest, layer.digest);
          assert.equal(storedDoc.config.digest, config.digest);
          assert.deepEqual(
            await Deno.readFile(`${out}/blobs/sha256/${layer.digest.slice(7)}`),
            layer.bytes,
          );
          assert.deepEqual(
            await Deno.readFile(
              `${out}/blobs/sha256/${config.digest.slice(7)}`,
            ),
            config.bytes,
          );
        },
      );
    }
  } finally {
    client.close();
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
