/**
 * Which scheme a loopback registry is spoken to in (containerd's rule): on
 * a port other than 443 and without a CA of its own in certs.d, plain HTTP
 * first, so a plain registry sees no TLS handshake; a TLS one answers the
 * plain probe with a 400 and is then spoken to in TLS. Seen through a TCP
 * relay in front of the real registry that notes how each connection
 * starts (0x16: a TLS ClientHello).
 *
 * @module
 */

import assert from "node:assert/strict";
import { tempDir } from "../_privileged.ts";
import { parseReference, RegistryClient } from "../../src/registry/mod.ts";
import { OCI_MANIFEST } from "../../src/image/mod.ts";
import { makePki, startRegistry } from "./_registry.ts";
import { blobOf, manifestFor, noCredentials } from "./_data.ts";

/**
 * A TCP relay on 127.0.0.1 to `target`; `starts` gets each connection's
 * first byte. A plain (non-TLS) connection is held `plainDelayMs` first, so
 * requests sent at once are all in flight when the first answer comes.
 */
function relay(target: string, plainDelayMs = 0) {
  const [hostname, port] = target.split(":");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const starts: number[] = [];
  const conns = new Set<Deno.Conn>();
  const serve = (async () => {
    for await (const c of listener) {
      conns.add(c);
      (async () => {
        const up = await Deno.connect({ hostname, port: Number(port) });
        conns.add(up);
        const first = new Uint8Array(1);
        if ((await c.read(first)) !== 1) return;
        starts.push(first[0]);
        if (first[0] !== 0x16 && plainDelayMs > 0) {
          await new Promise((r) => setTimeout(r, plainDelayMs));
        }
        await up.write(first);
        await Promise.allSettled([
          c.readable.pipeTo(up.writable),
          up.readable.pipeTo(c.writable),
        ]);
      })().catch(() => {}).finally(() => {
        for (const x of [c]) conns.delete(x);
      });
    }
  })().catch(() => {});
  return {
    host: `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    starts,
    async stop() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await serve;
    },
  };
}

/** Pushes a small image to `host` with `client`; returns its reference. */
async function pushOne(client: RegistryClient, host: string) {
  const b = blobOf(3000, 41);
  const cfg = blobOf(100, 42);
  await client.pushBlob(`${host}/scheme/app`, b, b.bytes);
  await client.pushBlob(`${host}/scheme/app`, cfg, cfg.bytes);
  const ref = parseReference(`${host}/scheme/app:v1`);
  const bytes = manifestFor(OCI_MANIFEST, cfg, [b]);
  await client.putManifest(ref, OCI_MANIFEST, bytes);
  return { ref, bytes, blob: b };
}

Deno.test("a plain-HTTP loopback registry is spoken to without a TLS attempt", async () => {
  const reg = await startRegistry();
  const r = relay(reg.host);
  try {
    const c = new RegistryClient({
      credentials: noCredentials,
      certsDirs: ["/nonexistent"],
    });
    const { ref, bytes } = await pushOne(c, r.host);
    assert.deepEqual((await c.getManifest(ref)).bytes, bytes);
    c.close();
    assert.ok(r.starts.length > 0);
    assert.deepEqual(r.starts.filter((b) => b === 0x16), [], "a TLS hello");
  } finally {
    await r.stop();
    await reg.stop();
  }
});

Deno.test("a TLS loopback registry without certs.d answers the plain probe with a 400: then TLS", async () => {
  await using tmp = await tempDir("layerfs-scheme-");
  const dir = tmp.path;
  const pki = await makePki(dir);
  const reg = await startRegistry({
    tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca },
  });
  const r = relay(reg.host, 50);
  try {
    // Pushed through a client that has the CA in certs.d (TLS first).
    await Deno.mkdir(`${dir}/certs.d/${r.host}`, { recursive: true });
    await Deno.copyFile(pki.ca, `${dir}/certs.d/${r.host}/ca.crt`);
    const withCa = new RegistryClient({
      credentials: noCredentials,
      certsDirs: [`${dir}/certs.d`],
    });
    const { bytes, blob } = await pushOne(withCa, r.host);
    const bytesDigest = blob.digest;
    withCa.close();
    assert.ok(r.starts.every((b) => b === 0x16), "certs.d: TLS first");
    r.starts.length = 0;
    // Trusted through DENO_CERT instead, no certs.d: a process of its own.
    const script = `
      import { parseReference, RegistryClient } from "./src/registry/mod.ts";
      const c = new RegistryClient({ credentials: async () => undefined, certsDirs: ["/nonexistent"] });
      // Several first requests at once (as a push sends them): each finds
      // its way to TLS, whichever answer comes first.
      const ref = parseReference("${r.host}/scheme/app:v1");
      const [m, m2, has] = await Promise.all([
        c.getManifest(ref),
        c.getManifest(ref),
        c.hasBlob("${r.host}/scheme/app", "${bytesDigest}"),
      ]);
      if (m2.bytes.length !== m.bytes.length || has !== true) throw new Error("concurrent requests differ");
      console.log(m.bytes.length);
      c.close();`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      cwd: new URL("../../", import.meta.url).pathname,
      env: { DENO_CERT: pki.ca },
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(
      new TextDecoder().decode(out.stdout).trim(),
      `${bytes.length}`,
    );
    // Plain probes (GET or HEAD, each answered with a 400), then TLS.
    const plain = r.starts.filter((b) => b !== 0x16);
    assert.ok(plain.length >= 1 && plain.length <= 3, `${r.starts}`);
    assert.ok(plain.every((b) => b === 0x47 || b === 0x48), `${r.starts}`);
    assert.ok(r.starts.some((b) => b === 0x16), `${r.starts}`);
  } finally {
    await r.stop();
    await reg.stop();
  }
});
