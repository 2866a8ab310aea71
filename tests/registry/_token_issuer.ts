/**
 * Test fixture: a token issuer on 127.0.0.1 as distribution's `auth: token`
 * expects (docs/spec/auth/jwt.md): ES256 JWTs whose `x5c` header holds the
 * signing certificate, issued for the scopes asked for when the basic
 * credentials are right, with no access otherwise.
 *
 * @module
 */

import { Buffer } from "node:buffer";

function b64url(bytes: Uint8Array | string): string {
  return Buffer.from(bytes).toString("base64url");
}

function pemBody(pem: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(
    Buffer.from(
      pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""),
      "base64",
    ),
  );
}

/** Options of the issuer. */
export interface IssuerOptions {
  /** Signing certificate (PEM path) and PKCS#8 key (PEM path). */
  cert: string;
  key: string;
  /** Accepted user and password. */
  user: string;
  password: string;
  /** `service` and `iss`. */
  service: string;
  issuer: string;
}

/** A running issuer. */
export interface Issuer {
  /** Its token endpoint. */
  realm: string;
  /** Requests served, with the scopes each asked for and whether they authenticated. */
  requests: { scopes: string[]; authenticated: boolean }[];
  /** `expires_in` of the next replies. @default 300 */
  expiresIn: number;
  /** Seconds added to the JWT's `exp` (negative: already expired for the registry). @default 300 */
  expOffset: number;
  /** How many of the next tokens are already expired for the registry (fresh by `expires_in`). @default 0 */
  expiredNext: number;
  /** Reply field: "token" or "access_token". @default "token" */
  field: "token" | "access_token";
  /** Stops it. */
  stop(): Promise<void>;
}

/** Starts the issuer. */
export async function startIssuer(o: IssuerOptions): Promise<Issuer> {
  const certDer = pemBody(await Deno.readTextFile(o.cert));
  const key = await crypto.subtle.importKey(
    "pkcs8",
    pemBody(await Deno.readTextFile(o.key)),
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["sign"],
  );
  const expected = "Basic " +
    Buffer.from(`${o.user}:${o.password}`).toString("base64");
  const state: Issuer = {
    realm: "",
    requests: [],
    expiresIn: 300,
    expOffset: 300,
    expiredNext: 0,
    field: "token",
    stop: () => Promise.resolve(),
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const url = new URL(req.url);
      const auth = req.headers.get("authorization");
      if (auth !== null && auth !== expected) {
        return new Response('{"details":"wrong credentials"}', { status: 401 });
      }
      const scopes = url.searchParams.getAll("scope");
      state.requests.push({ scopes, authenticated: auth !== null });
      const access = auth === null ? [] : scopes.flatMap((s) => {
        const [type, name, actions] = s.split(":");
        return type === "repository" && name && actions
          ? [{ type, name, actions: actions.split(",") }]
          : [];
      });
      const now = Math.floor(Date.now() / 1000);
      const header = {
        typ: "JWT",
        alg: "ES256",
        x5c: [Buffer.from(certDer).toString("base64")],
      };
      const claims = {
        iss: o.issuer,
        sub: auth === null ? "" : o.user,
        aud: url.searchParams.get("service") ?? "",
        exp: now + (state.expiredNext-- > 0 ? -3600 : state.expOffset),
        nbf: now - 10,
        iat: now,
        jti: crypto.randomUUID(),
        access,
      };
      const signingInput = `${b64url(JSON.stringify(header))}.${
        b64url(JSON.stringify(claims))
      }`;
      const sig = new Uint8Array(
        await crypto.subtle.sign(
          { name: "ECDSA", hash: "SHA-256" },
          key,
          new TextEncoder().encode(signingInput),
        ),
      );
      const token = `${signingInput}.${b64url(sig)}`;
      return Response.json({
        [state.field]: token,
        expires_in: state.expiresIn,
      });
    },
  );
  state.realm = `http://127.0.0.1:${server.addr.port}/token`;
  state.stop = () => server.shutdown();
  return state;
}
