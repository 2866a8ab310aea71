/**
 * Test fixture: the real CNCF distribution registry (`docker-registry`) on
 * 127.0.0.1 with a free port and a temporary storage dir, plain, TLS,
 * htpasswd or token auth; a PKI made with openssl; stopped by pid.
 *
 * @module
 */

import { run } from "../image/_images.ts";

export { run };

/** A CA, a server certificate for 127.0.0.1/localhost, and a token-signing certificate. */
export interface Pki {
  /** Directory holding the files. */
  dir: string;
  /** CA certificate (PEM) path. */
  ca: string;
  /** Server certificate and key paths. */
  serverCert: string;
  serverKey: string;
  /** Token-signing certificate (signed by the CA) and its PKCS#8 key. */
  tokenCert: string;
  tokenKey: string;
}

/** Makes a PKI with openssl in `dir` (EC P-256 keys). */
export async function makePki(
  dir: string,
  name = "layerfs test CA",
): Promise<Pki> {
  const p = (f: string) => `${dir}/${f}`;
  const ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
  await run("openssl", ["genpkey", ...ec, "-out", p("ca.key")]);
  await run("openssl", [
    "req",
    "-x509",
    "-new",
    "-key",
    p("ca.key"),
    "-sha256",
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-out",
    p("ca.crt"),
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
  ]);
  for (
    const [base, ext] of [
      [
        "server",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE",
      ],
      [
        "token",
        "keyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE",
      ],
    ]
  ) {
    await run("openssl", ["genpkey", ...ec, "-out", p(`${base}.key`)]);
    await run("openssl", [
      "req",
      "-new",
      "-key",
      p(`${base}.key`),
      "-subj",
      `/CN=${base}`,
      "-out",
      p(`${base}.csr`),
    ]);
    await Deno.writeTextFile(p(`${base}.ext`), ext + "\n");
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      p(`${base}.csr`),
      "-CA",
      p("ca.crt"),
      "-CAkey",
      p("ca.key"),
      "-CAcreateserial",
      "-days",
      "2",
      "-sha256",
      "-extfile",
      p(`${base}.ext`),
      "-out",
      p(`${base}.crt`),
    ]);
  }
  return {
    dir,
    ca: p("ca.crt"),
    serverCert: p("server.crt"),
    serverKey: p("server.key"),
    tokenCert: p("token.crt"),
    tokenKey: p("token.key"),
  };
}

/** A free TCP port on 127.0.0.1 (closed again; the registry binds it next). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** How to configure the registry. */
export interface RegistryConfig {
  /** Serve TLS with these. */
  tls?: { cert: string; key: string; ca: string };
  /** htpasswd basic auth with one user. */
  htpasswd?: { user: string; password: string };
  /** Token auth. */
  token?: {
    realm: string;
    service: string;
    issuer: string;
    rootCertBundle: string;
  };
}

/** A running registry. */
export interface Registry {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** Its base URL. */
  url: string;
  /** Temp dir (config, storage). */
  dir: string;
  /** The registry process (benchmarks read its CPU time). */
  pid: number;
  /** Stops it (SIGTERM, then SIGKILL) and removes its dir. */
  stop(): Promise<void>;
}

/** Starts `docker-registry serve` as configured and waits until it answers. */
export async function startRegistry(
  config: RegistryConfig = {},
): Promise<Registry> {
  const dir = await Deno.makeTempDir({ prefix: "layerfs-registry-" });
  const port = freePort();
  const lines = [
    "version: 0.1",
    "log:",
    "  level: error",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${dir}/data`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    "  secret: layerfs-test-secret",
  ];
  if (config.tls) {
    lines.push(
      "  tls:",
      `    certificate: ${config.tls.cert}`,
      `    key: ${config.tls.key}`,
    );
  }
  if (config.htpasswd) {
    const file = `${dir}/htpasswd`;
    await run("htpasswd", [
      "-Bbc",
      file,
      config.htpasswd.user,
      config.htpasswd.password,
    ]).catch(async (e) => {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw e;
    });
    lines.push(
      "auth:",
      "  htpasswd:",
      "    realm: layerfs-test",
      `    path: ${file}`,
    );
  } else if (config.token) {
    const t = config.token;
    lines.push(
      "auth:",
      "  token:",
      `    realm: ${t.realm}`,
      `    service: ${t.service}`,
      `    issuer: ${t.issuer}`,
      `    rootcertbundle: ${t.rootCertBundle}`,
    );
  }
  let child: Deno.ChildProcess;
  try {
    await Deno.writeTextFile(`${dir}/config.yml`, lines.join("\n") + "\n");
    child = new Deno.Command("docker-registry", {
      args: ["serve", `${dir}/config.yml`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    // Not started (no docker-registry, say): nothing is left behind.
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw e;
  }
  let stderr = "";
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const c of child.stderr) {
      stderr += decoder.decode(c, { stream: true });
    }
  })();
  const scheme = config.tls ? "https" : "http";
  const url = `${scheme}://127.0.0.1:${port}`;
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch { /* gone already */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 5000);
      await status;
      clearTimeout(timer);
    }
    await drained;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const client = config.tls
    ? Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(config.tls.ca)],
    })
    : undefined;
  try {
    // Bounded: 200 polls of 50 ms.
    for (let i = 0;; i++) {
      if (exited) throw new Error(`docker-registry exited: ${stderr}`);
      try {
        const r = await fetch(`${url}/v2/`, { client });
        await r.body?.cancel();
        break;
      } catch (e) {
        // A certificate the client refuses was still a TLS answer: it is up
        // (a test serving a certificate on purpose that rustls refuses).
        const why = `${e} ${(e as Error)?.cause ?? ""}`;
        if (/certificate/i.test(why)) break;
        if (i >= 200) {
          throw new Error(`docker-registry did not answer: ${e} ${stderr}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (e) {
    await stop();
    throw e;
  } finally {
    client?.close();
  }
  return { host: `127.0.0.1:${port}`, url, dir, pid: child.pid, stop };
}
