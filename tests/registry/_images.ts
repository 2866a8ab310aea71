/**
 * Test helpers of the pull and push tests: the images they push with
 * skopeo and pull or push with layerfs.
 *
 * @module
 */

import { tarHeader, TarWriter } from "../../mod.ts";
import {
  baseLayer,
  buildImage,
  buildLayer,
  type BuiltImage,
  topLayer,
} from "../image/_images.ts";
import { makePki, type Registry, run, startRegistry } from "./_registry.ts";
import { type Issuer, startIssuer } from "./_token_issuer.ts";

/** skopeo copies an OCI layout (`dir`, tag `tag`) to `docker://dest`. */
export async function skopeoPush(
  dir: string,
  tag: string,
  dest: string,
  extra: string[] = [],
): Promise<void> {
  await run("skopeo", [
    "--insecure-policy",
    "copy",
    "--dest-tls-verify=false",
    ...extra,
    `oci:${dir}:${tag}`,
    `docker://${dest}`,
  ]);
}

/** The two-layer test image: base (gzip), top with whiteout and opaque dir (zstd). */
export async function testImage(): Promise<BuiltImage> {
  return buildImage([
    buildLayer(await baseLayer(), "gzip"),
    buildLayer(await topLayer(), "zstd"),
  ]);
}

/** A bigger image: `n` layers of `mib` MiB of incompressible data each (gzip). */
export async function bigImage(n: number, mib: number): Promise<BuiltImage> {
  const layers = [];
  for (let i = 0; i < n; i++) {
    const data = new Uint8Array(mib << 20);
    for (let o = 0; o < data.length; o += 65536) {
      crypto.getRandomValues(data.subarray(o, o + 65536));
    }
    const tw = new TarWriter();
    const out = new Response(tw.readable).bytes();
    await tw.add(tarHeader({ name: `layer${i}.bin`, size: data.length }), data);
    await tw.close();
    layers.push(buildLayer(await out, "gzip"));
  }
  return buildImage(layers);
}

/**
 * A registry with token auth: a PKI in `pkiDir`, the token issuer, and
 * docker-registry trusting it; `stop` ends both.
 */
export async function startTokenRegistry(
  pkiDir: string,
  user: string,
  password: string,
): Promise<{ registry: Registry; issuer: Issuer; stop(): Promise<void> }> {
  const pki = await makePki(pkiDir);
  const issuer = await startIssuer({
    cert: pki.tokenCert,
    key: pki.tokenKey,
    user,
    password,
    service: "layerfs-test",
    issuer: "layerfs-test-issuer",
  });
  const registry = await startRegistry({
    token: {
      realm: issuer.realm,
      service: "layerfs-test",
      issuer: "layerfs-test-issuer",
      rootCertBundle: pki.ca,
    },
  }).catch(async (e) => {
    await issuer.stop();
    throw e;
  });
  return {
    registry,
    issuer,
    async stop() {
      await registry.stop();
      await issuer.stop();
    },
  };
}
