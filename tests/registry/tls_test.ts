/**
 * TLS against the real registry serving a certificate from a CA the test
 * makes: trusted through a certs.d directory (by 127.0.0.1:PORT and by
 * localhost:PORT), refused without it or with another CA's certificate (no
 * fallback to plain HTTP on a certificate error).
 *
 * @module
 */

import assert from "node:assert/strict";
import { tempDir } from "../_privileged.ts";
import { RegistryError } from "../../src/errors.ts";
import { parseReference, RegistryClient } from "../../src/registry/mod.ts";
import { OCI_MANIFEST } from "../../src/image/mod.ts";
import { makePki, startRegistry } from "./_registry.ts";
import { blobOf, collect, manifestFor, noCredentials } from "./_data.ts";

Deno.test("TLS with per-registry CAs from certs.d", async (t) => {
  await using tmp = await tempDir("layerfs-tls-");
  const dir = tmp.path;
  const pki = await makePki(await mkdir(`${dir}/pki`));
  const other = await makePki(await mkdir(`${dir}/other`), "another CA");
  const reg = await startRegistry({
    tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca },
  });
  const port = reg.host.split(":")[1];
  const certsD = `${dir}/certs.d`;
  for (const host of [reg.host, `localhost:${port}`]) {
    await mkdir(`${certsD}/${host}`);
    await Deno.copyFile(pki.ca, `${certsD}/${host}/ca.crt`);
  }
  const wrongD = `${dir}/wrong.d`;
  await mkdir(`${wrongD}/${reg.host}`);
  await Deno.copyFile(other.ca, `${wrongD}/${reg.host}/ca.crt`);
  try {
    await t.step("the certs.d CA is trusted: push and pull", async () => {
      const c = new RegistryClient({
        credentials: noCredentials,
        certsDirs: [`${dir}/none`, certsD],
      });
      const b = blobOf(5000, 31);
      const cfg = blobOf(100, 32);
      for (const host of [reg.host, `localhost:${port}`]) {
        await c.pushBlob(`${host}/tls/app`, b, b.bytes);
        await c.pushBlob(`${host}/tls/app`, cfg, cfg.bytes);
        const ref = parseReference(`${host}/tls/app:v1`);
        const bytes = manifestFor(OCI_MANIFEST, cfg, [b]);
        await c.putManifest(ref, OCI_MANIFEST, bytes);
        assert.deepEqual((await c.getManifest(ref)).bytes, bytes);
        assert.deepEqual(
          await collect(c.getBlob(`${host}/tls/app`, b.digest, b.size)),
          b.bytes,
        );
      }
      c.close();
    });

    for (
      const [what, dirs] of [["no CA", [`${dir}/none`]], ["another CA", [
        wrongD,
      ]]] as const
    ) {
      await t.step(`${what}: refused, naming where the CA goes`, async () => {
        const c = new RegistryClient({
          credentials: noCredentials,
          certsDirs: dirs,
        });
        const e = await c.getManifest(parseReference(`${reg.host}/tls/app:v1`))
          .then(
            () => undefined,
            (x) => x,
          );
        assert.ok(e instanceof RegistryError, String(e));
        assert.match(e.message, /TLS certificate not trusted/);
        // Where this client looks: the certsDirs it was given.
        assert.ok(
          e.message.endsWith(`put it in ${dirs[0]}/${reg.host}/ca.crt`),
          e.message,
        );
        c.close();
      });
    }
  } finally {
    await reg.stop();
  }
});

async function mkdir(p: string): Promise<string> {
  await Deno.mkdir(p, { recursive: true });
  return p;
}
