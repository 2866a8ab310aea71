/**
 * Which registries may be spoken to without TLS, and the CA certificates a
 * registry's TLS connections trust: Deno's root store (Mozilla's roots, or
 * the system's with `DENO_TLS_CA_STORE=system`) plus the registry's own
 * `*.crt` files in `/etc/containers/certs.d/<host>/` and
 * `/etc/docker/certs.d/<host>/` (containers-certs.d(5); `<host>` includes
 * the port, e.g. `registry.lan:5000`).
 *
 * Plain HTTP is allowed only for loopback registries (`localhost`,
 * 127.0.0.0/8, `::1`) and those listed as insecure; they are tried over
 * HTTPS first and fall back to HTTP when the server does not speak TLS, as
 * docker and podman do. A listed registry still verifies certificates when
 * it speaks TLS (Deno has no per-client "skip verification").
 *
 * @module
 */

import { hostname } from "../image/reference.ts";

/** The certs.d roots podman and docker read, in order. */
export const DEFAULT_CERTS_DIRS: readonly string[] = [
  "/etc/containers/certs.d",
  "/etc/docker/certs.d",
];

/**
 * Whether `host` (with or without a port) is a loopback name or address.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isLoopback } from "./tls.ts";
 * assert.equal(isLoopback("127.0.0.1:5000"), true);
 * assert.equal(isLoopback("localhost"), true);
 * assert.equal(isLoopback("registry.example.com"), false);
 * ```
 */
export function isLoopback(host: string): boolean {
  const h = hostname(host).toLowerCase();
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/**
 * Whether plain HTTP may be used for `host`: loopback, or named in
 * `insecure` (with its port, or by its name alone).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { plainHttpAllowed } from "./tls.ts";
 * assert.equal(plainHttpAllowed("registry.lan:5000", ["registry.lan"]), true);
 * assert.equal(plainHttpAllowed("registry.lan:5000", []), false);
 * ```
 */
export function plainHttpAllowed(
  host: string,
  insecure: readonly string[] = [],
): boolean {
  return isLoopback(host) || insecure.includes(host) ||
    insecure.includes(hostname(host));
}

/**
 * The PEM certificates of `dirs/<host>/*.crt`, sorted by file name per dir.
 *
 * @param host The registry host with its port, as references name it.
 * @param dirs certs.d roots (default {@link DEFAULT_CERTS_DIRS}).
 * @returns PEM texts (empty when there are none).
 * @example
 * ```ts ignore
 * import { registryCaCerts } from "./tls.ts";
 * const caCerts = await registryCaCerts("registry.lan:5000");
 * const client = Deno.createHttpClient({ caCerts });
 * ```
 */
export async function registryCaCerts(
  host: string,
  dirs: readonly string[] = DEFAULT_CERTS_DIRS,
): Promise<string[]> {
  const out: string[] = [];
  // A name with ".." or "/" would walk out of certs.d: references never
  // hold those in a host, but be sure.
  if (host.includes("/") || host.includes("..")) return out;
  for (const root of dirs) {
    const dir = `${root}/${host}`;
    let names: string[] = [];
    try {
      for await (const e of Deno.readDir(dir)) {
        if (e.name.endsWith(".crt")) names.push(e.name);
      }
    } catch (e) {
      if (
        e instanceof Deno.errors.NotFound ||
        e instanceof Deno.errors.NotADirectory
      ) continue;
      throw e;
    }
    names = names.sort();
    for (const n of names) out.push(await Deno.readTextFile(`${dir}/${n}`));
  }
  return out;
}
