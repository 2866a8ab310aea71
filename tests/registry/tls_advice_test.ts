/**
 * A certificate the TLS stack refuses gets advice that fits: a self-signed
 * CA served as the registry's own certificate (what `openssl req -x509`
 * makes) is named as such, and a private CA missing from certs.d is asked
 * for where this client looks (the `certsDirs` it was given).
 *
 * @module
 */

import assert from "node:assert/strict";
import { tempDir } from "../_privileged.ts";
import { parseReference, RegistryClient } from "../../src/registry/mod.ts";
import { RegistryError } from "../../src/errors.ts";
import { makePki, startRegistry } from "./_registry.ts";
import { noCredentials } from "./_data.ts";
import { run } from "../image/_images.ts";

async function refusal(host: string, certsDirs: string[]): Promise<string> {
  const c = new RegistryClient({ credentials: noCredentials, certsDirs });
  try {
    await c.getManifest(parseReference(`${host}/tls/app:v1`));
    throw new Error("the registry was trusted");
  } catch (e) {
    assert.ok(e instanceof RegistryError, String(e));
    return e.message;
  } finally {
    c.close();
  }
}

Deno.test("registry TLS: a CA certificate served as the registry's own is named; a missing CA is asked for in the certsDirs given", async () => {
  await using tmp = await tempDir("layerfs-tls-advice-");
  const d = tmp.path;
  // One self-signed certificate that is a CA, with the registry's address.
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${d}/self.key`,
    "-out",
    `${d}/self.crt`,
    "-days",
    "2",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
  ]);
  const self = await startRegistry({
    tls: { cert: `${d}/self.crt`, key: `${d}/self.key`, ca: `${d}/self.crt` },
  });
  const pki = await makePki(d);
  const proper = await startRegistry({
    tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca },
  });
  try {
    await Deno.mkdir(`${d}/certs.d/${self.host}`, { recursive: true });
    await Deno.copyFile(`${d}/self.crt`, `${d}/certs.d/${self.host}/ca.crt`);
    assert.match(
      await refusal(self.host, [`${d}/certs.d`]),
      /CaUsedAsEndEntity.*serves a CA certificate as its own; issue it a server certificate signed by that CA/,
    );
    // No CA for it in the certs.d given: that is where it is asked for.
    assert.match(
      await refusal(proper.host, [`${d}/certs.d`, `${d}/more`]),
      new RegExp(
        `if the registry uses a private CA, put it in ${d}/certs.d/${proper.host}/ca.crt or ${d}/more/${proper.host}/ca.crt$`,
      ),
    );
  } finally {
    await self.stop();
    await proper.stop();
  }
});
