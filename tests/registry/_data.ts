/**
 * Test data for the registry tests: deterministic blobs, manifests, stream collection.
 *
 * @module
 */

import { parseReference, type RegistryClient } from "../../src/registry/mod.ts";
import { digestOf, OCI_MANIFEST } from "../../src/image/mod.ts";
import { concat } from "../_bytes.ts";

/** A blob: bytes, digest, size. */
export interface Blob {
  bytes: Uint8Array<ArrayBuffer>;
  digest: string;
  size: number;
}

/** `size` pseudo-random bytes from `seed` (xorshift), with their digest. */
export function blobOf(size: number, seed: number): Blob {
  const bytes = new Uint8Array(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return { bytes, digest: digestOf(bytes), size };
}

/** Reads a stream to its end. */
export async function collect(
  s: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of s) parts.push(p);
  return concat(parts);
}

/** A manifest document of `mediaType` naming `config` and `layers`. */
export function manifestFor(
  mediaType: string,
  config: Blob,
  layers: Blob[],
): Uint8Array {
  const oci = mediaType.includes("oci");
  const doc = {
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: oci
        ? "application/vnd.oci.image.config.v1+json"
        : "application/vnd.docker.container.image.v1+json",
      digest: config.digest,
      size: config.size,
    },
    layers: layers.map((l) => ({
      mediaType: oci
        ? "application/vnd.oci.image.layer.v1.tar+gzip"
        : "application/vnd.docker.image.rootfs.diff.tar.gzip",
      digest: l.digest,
      size: l.size,
    })),
  };
  return new TextEncoder().encode(JSON.stringify(doc, null, 2));
}

/** No stored credentials (the tests never read the machine's auth files). */
export const noCredentials = () => Promise.resolve(undefined);

/**
 * Puts an OCI image of `config` and `layers` in `repo` (`host/name`) as
 * `repo:tag`, through `client`; returns the manifest's bytes.
 */
export async function seedImage(
  client: RegistryClient,
  repo: string,
  tag: string,
  config: Blob,
  layers: Blob[],
): Promise<Uint8Array> {
  for (const b of [...layers, config]) {
    await client.pushBlob(repo, b, b.bytes);
  }
  const manifest = manifestFor(OCI_MANIFEST, config, layers);
  await client.putManifest(
    parseReference(`${repo}:${tag}`),
    OCI_MANIFEST,
    manifest,
  );
  return manifest;
}
