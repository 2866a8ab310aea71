/**
 * Internal: one registry host's connection: its HTTP client (connection
 * pool, TLS roots), the scheme (HTTPS, or plain HTTP where allowed), the
 * authentication it asked for (anonymous, basic, bearer tokens cached per
 * scope), bounded retries, redirects that never carry credentials to
 * another host, and stall detection (a request on which nothing moves for
 * `idleTimeoutMs` is aborted: `_stall.ts`).
 *
 * @module
 */

import {
  InsecureRegistry,
  RegistryDenied,
  RegistryError,
  RegistryUnauthorized,
} from "../errors.ts";
import type { Credentials } from "./auth_file.ts";
import { parseChallenges } from "./_challenge.ts";
import {
  backoff,
  discard,
  MAX_JSON_BODY,
  readBounded,
  repositoryScope,
  retryAfterMs,
  sleep,
} from "./_http.ts";
import { StallWatch } from "./_stall.ts";
import { isLoopback, plainHttpAllowed, registryCaCerts } from "./tls.ts";

/** Settings shared by every host of one client. */
export interface TransportSettings {
  /** Hosts that may use plain HTTP besides loopback ones. */
  insecure: readonly string[];
  /** Hosts to speak plain HTTP to without trying TLS first. */
  http: readonly string[];
  /** certs.d roots. */
  certsDirs: readonly string[];
  /** Credentials for a host and repository. */
  credentials: (
    host: string,
    repository: string | undefined,
  ) => Promise<Credentials | undefined>;
  /** Tries per request (network errors, 5xx, 429). */
  tries: number;
  /** Backoff base in ms. */
  baseDelayMs: number;
  /** Backoff cap in ms. */
  maxDelayMs: number;
  /** Longest `Retry-After` honoured, in ms; a longer one fails at once. */
  maxRetryAfterMs: number;
  /**
   * Longest wait, in ms, with nothing moving on a request's connection (no
   * reply yet, no body byte); 0 waits forever.
   */
  idleTimeoutMs: number;
  /** Clock in ms (token expiry, Retry-After dates). */
  now: () => number;
  /** User-Agent sent. */
  userAgent: string;
}

/** One request as the client describes it. */
export interface RequestSpec {
  /** HTTP method. */
  method: string;
  /** `/v2/...` path, or an absolute URL the registry gave (an upload Location). */
  url: string | URL;
  /** Extra headers. */
  headers?: Record<string, string>;
  /** Body: bytes are resent on retries; a stream is sent once. */
  body?: Uint8Array | ReadableStream<Uint8Array>;
  /** The repository the request is about (scope and credentials). */
  repository: string;
  /** Needs push access. */
  push?: boolean;
  /** More token scopes (a mount's source repository). */
  extraScopes?: string[];
  /** Names the thing in errors: a reference or repo@digest. */
  subject: string;
  /** Follow redirects (blob downloads). */
  followRedirects?: boolean;
  /** Stops the request and its retries. */
  signal?: AbortSignal;
  /**
   * Bytes the registry works through before it replies (the blob a final
   * upload PUT commits): more time for the reply before it counts as a stall.
   */
  serverBytes?: number;
}

interface Token {
  token: string;
  expiresAt: number;
}

type AuthScheme =
  | { scheme: "basic" }
  | { scheme: "bearer"; realm: string; service?: string };

const RETRYABLE = new Set([429, 500, 502, 503, 504]);
const MAX_REDIRECTS = 5;

/** The messages of `e` and its causes (Deno nests the useful one two deep). */
function causeText(e: unknown): string {
  const parts: string[] = [];
  for (let c = e, i = 0; c !== undefined && c !== null && i < 5; i++) {
    parts.push(String((c as Error).message ?? c));
    c = (c as { cause?: unknown }).cause;
  }
  return parts.join(": ");
}

function isTlsProtocolMismatch(e: unknown): boolean {
  const m = causeText(e);
  return /InvalidContentType|corrupt message|wrong version number|record overflow|http\/1\.[01] 400/i
    .test(m);
}

function isCertificateError(e: unknown): boolean {
  const m = causeText(e);
  return /certificate|UnknownIssuer|NotValidForName|BadSignature|Expired/i
    .test(m);
}

/** A network failure's text: Deno's, without URLs' query strings (upload state). */
function netMessage(e: unknown): string {
  let c: unknown = e;
  for (let i = 0; i < 5 && (c as { cause?: unknown })?.cause; i++) {
    c = (c as { cause?: unknown }).cause;
  }
  return String((c as Error)?.message ?? c).replace(/\?[^\s)]*/g, "?...")
    .slice(0, 300);
}

/** One registry host: see the module doc. */
export class HostTransport {
  /** The registry as references name it (`docker.io`): credentials, certs.d, messages. */
  readonly name: string;
  /** Where its API is (`registry-1.docker.io` for `docker.io`): connections. */
  readonly host: string;
  #settings: TransportSettings;
  #client?: Deno.HttpClient;
  #clientReady?: Promise<Deno.HttpClient>;
  #scheme?: "https" | "http";
  #mayFallBack: boolean;
  /** The scheme's choice, made once (see {@link #chooseScheme}). */
  #choice?: Promise<void>;
  /** Plain HTTP is being tried first; the first answer may still say TLS. */
  #probing = false;
  /** Whether certs.d has a CA for this host (known once the client is made). */
  #ownCa = false;
  #auth?: AuthScheme;
  #tokens = new Map<string, Token>();
  #creds = new Map<string, Promise<Credentials | undefined>>();

  constructor(name: string, host: string, settings: TransportSettings) {
    this.name = name;
    this.host = host;
    this.#settings = settings;
    this.#mayFallBack = plainHttpAllowed(name, settings.insecure);
    if (settings.http.includes(name)) {
      // Asked for plain HTTP: refused before any connection unless allowed.
      if (!this.#mayFallBack) throw new InsecureRegistry(name);
      this.#scheme = "http";
    }
  }

  /** `scheme://host` of the registry. */
  get origin(): string {
    return `${this.#scheme ?? "https"}://${this.host}`;
  }

  #httpClient(): Promise<Deno.HttpClient> {
    this.#clientReady ??= registryCaCerts(this.name, this.#settings.certsDirs)
      .then((caCerts) => {
        this.#ownCa = caCerts.length > 0;
        this.#client = Deno.createHttpClient(caCerts.length ? { caCerts } : {});
        return this.#client;
      });
    return this.#clientReady;
  }

  /**
   * containerd's rule for a loopback registry (`localhost:5000`,
   * `127.0.0.1:PORT`) on a port other than 443 and without a CA of its own
   * in certs.d: plain HTTP first, since that is what such registries
   * speak, and a TLS attempt that fails costs a handshake (~25 ms here).
   * The first answer may still say the port speaks TLS (a non-JSON 400, as
   * Go's and nginx's TLS servers give a plain request, or a dropped
   * connection): then TLS after all, with the usual fallback.
   */
  #chooseScheme(): Promise<void> {
    // One choice that every first request waits for (a push sends several).
    return this.#choice ??= (async () => {
      if (this.#scheme !== undefined || !isLoopback(this.name)) return;
      const port = /:(\d+)$/.exec(this.name)?.[1];
      if (port === undefined || port === "443") return;
      await this.#httpClient();
      if (this.#ownCa || this.#scheme !== undefined) return;
      this.#scheme = "http";
      this.#probing = true;
    })();
  }

  /** The probe found TLS: back to HTTPS first, falling back as usual. */
  #tryTls(): void {
    this.#probing = false;
    this.#scheme = undefined;
  }

  /** Closes the connection pool. */
  close(): void {
    this.#client?.close();
    this.#client = undefined;
    this.#clientReady = undefined;
  }

  #credentials(repository: string): Promise<Credentials | undefined> {
    let p = this.#creds.get(repository);
    if (!p) {
      p = this.#settings.credentials(this.name, repository);
      this.#creds.set(repository, p);
      p.catch(() => this.#creds.delete(repository));
    }
    return p;
  }

  #scopes(spec: RequestSpec): string[] {
    // No repository (a ping of /v2/, as login does): a token without access.
    if (spec.repository === "") return [...(spec.extraScopes ?? [])];
    return [
      repositoryScope(spec.repository, spec.push),
      ...(spec.extraScopes ?? []),
    ].sort();
  }

  async #authorization(
    spec: RequestSpec,
    challengeScope?: string,
  ): Promise<string | undefined> {
    const auth = this.#auth;
    if (!auth) return undefined;
    const creds = await this.#credentials(spec.repository);
    if (auth.scheme === "basic") {
      return creds ? basic(creds) : undefined;
    }
    const scopes = this.#scopes(spec);
    const key = scopes.join(" ");
    const cached = this.#tokens.get(key);
    if (cached && cached.expiresAt > this.#settings.now()) {
      return `Bearer ${cached.token}`;
    }
    this.#tokens.delete(key);
    // The challenge may name a resource we did not think of (it names the
    // ones this request needs): ask for it too, unless ours covers it.
    const resource = challengeScope?.split(":").slice(0, 2).join(":");
    const wanted = challengeScope &&
        !scopes.some((s) => s.startsWith(`${resource}:`))
      ? [...scopes, challengeScope]
      : scopes;
    const t = await this.#fetchToken(auth, wanted, creds, spec);
    this.#tokens.set(key, t);
    return `Bearer ${t.token}`;
  }

  /** Token from the challenge's realm (distribution's token spec). */
  async #fetchToken(
    auth: Extract<AuthScheme, { scheme: "bearer" }>,
    scopes: string[],
    creds: Credentials | undefined,
    spec: RequestSpec,
  ): Promise<Token> {
    let url: URL;
    try {
      url = new URL(auth.realm);
    } catch {
      throw new RegistryError(
        this.name,
        "its token realm is not a URL; the registry is misconfigured",
      );
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new RegistryError(this.name, "its token realm is not http(s)");
    }
    // Credentials never travel in clear text to a non-loopback realm.
    if (
      url.protocol === "http:" &&
      !plainHttpAllowed(url.host, this.#settings.insecure)
    ) throw new InsecureRegistry(url.host);
    if (auth.service) url.searchParams.set("service", auth.service);
    for (const s of scopes) url.searchParams.append("scope", s);
    const headers = new Headers({ "user-agent": this.#settings.userAgent });
    if (creds) headers.set("authorization", basic(creds));
    const sameHost = url.host === this.host;
    const res = await this.#send(
      url,
      {
        method: "GET",
        headers,
        client: sameHost ? await this.#httpClient() : undefined,
      },
      true,
      spec.signal,
    );
    if (res.status === 401 || res.status === 403) {
      await discard(res);
      throw new RegistryUnauthorized(this.name, spec.subject, !!creds);
    }
    if (!res.ok) {
      await discard(res);
      throw new RegistryError(
        this.name,
        `its token server ${url.host} answered HTTP ${res.status}; retry later`,
        { status: res.status },
      );
    }
    const body = await readBounded(
      res,
      MAX_JSON_BODY,
      this.name,
      "the token reply",
    );
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(new TextDecoder().decode(body));
    } catch {
      throw new RegistryError(
        this.name,
        `its token server ${url.host} sent a reply that is not JSON`,
      );
    }
    const token = typeof doc?.token === "string" && doc.token
      ? doc.token
      : typeof doc?.access_token === "string"
      ? doc.access_token
      : "";
    if (!/^[!-~]+$/.test(token)) {
      throw new RegistryError(
        this.name,
        `its token server ${url.host} sent no usable token`,
      );
    }
    // The spec's default lifetime is 60 s; refresh a tenth early (at most 10 s).
    const life = typeof doc.expires_in === "number" && doc.expires_in > 0
      ? Math.min(doc.expires_in, 86400) * 1000
      : 60_000;
    return {
      token,
      expiresAt: this.#settings.now() + life - Math.min(10_000, life / 10),
    };
  }

  /**
   * Sends once per try: network errors, 5xx and 429 are retried (bytes
   * bodies only) with backoff or `Retry-After`, up to `tries`.
   */
  async #send(
    url: URL,
    init: RequestInit & { client?: Deno.HttpClient },
    replayable: boolean,
    signal?: AbortSignal,
    probe = false,
    serverBytes = 0,
  ): Promise<Response> {
    const s = this.#settings;
    for (let attempt = 1;; attempt++) {
      const last = !replayable || attempt >= s.tries;
      let res: Response;
      const watch = new StallWatch(s.idleTimeoutMs, signal);
      try {
        res = await watch.race(fetch(url, {
          ...init,
          body: watch.send(init.body, serverBytes),
          redirect: "manual",
          signal: watch.controller.signal,
        }));
        watch.disarm();
      } catch (err) {
        watch.end();
        if (signal?.aborted) throw signal.reason;
        const e = watch.stalled
          ? new Error(`no reply in ${watch.armedMs / 1000} s`)
          : err;
        // A TLS port may drop a plain request: no retries, TLS instead. (It
        // does not sit on it: a stall is the host's, whatever it speaks.)
        if (probe && replayable && !watch.stalled) throw new TryTls();
        if (
          url.protocol === "https:" && url.host === this.host &&
          // "http": a request running at the same time found it out first
          // (the first requests of a push go out in parallel).
          this.#scheme !== "https" && this.#mayFallBack &&
          isTlsProtocolMismatch(e)
        ) throw new FallBackToHttp();
        if (isCertificateError(e)) {
          throw new RegistryError(
            url.host,
            `TLS certificate not trusted (${netMessage(e)}); ${
              certificateAdvice(netMessage(e), url.host, s.certsDirs)
            }`,
            { cause: e },
          );
        }
        if (last) {
          throw new RegistryError(
            url.host,
            `cannot reach it (${netMessage(e)}) after ${attempt} ${
              attempt === 1 ? "try" : "tries"
            }; check the name and the network, then retry`,
            { cause: e },
          );
        }
        await sleep(backoff(attempt, s.baseDelayMs, s.maxDelayMs), signal);
        continue;
      }
      res = watch.reply(res, url.host);
      if (url.protocol === "https:" && url.host === this.host) {
        this.#scheme ??= "https";
      }
      if (!RETRYABLE.has(res.status) || last) return res;
      const wait = retryAfterMs(res.headers, s.now()) ??
        backoff(attempt, s.baseDelayMs, s.maxDelayMs);
      await discard(res);
      if (wait > s.maxRetryAfterMs) {
        throw new RegistryError(
          url.host,
          `HTTP ${res.status}: it asks to retry after ${
            Math.ceil(wait / 1000)
          } s; retry later`,
          { status: res.status },
        );
      }
      await sleep(wait, signal);
    }
  }

  /**
   * Sends `spec` with authentication, retries and redirects; returns the
   * final response (2xx, 3xx when not followed, 404, other 4xx) for the
   * caller to read.
   *
   * @throws {RegistryUnauthorized} 401 after authenticating.
   * @throws {RegistryDenied} 403.
   * @throws {RegistryError} retries exhausted, TLS failure, redirect loops.
   * @throws {InsecureRegistry} a redirect to plain HTTP on a host that may not use it.
   */
  async request(spec: RequestSpec): Promise<Response> {
    await this.#chooseScheme();
    const replayable = !(spec.body instanceof ReadableStream);
    let authRetried = false;
    let redirects = 0;
    let url = this.#resolve(spec.url);
    let method = spec.method;
    let challengeScope: string | undefined;
    // Bounded: one scheme fallback, one re-authentication, MAX_REDIRECTS redirects.
    for (;;) {
      // The scheme may have changed meanwhile (a probe found TLS).
      if (redirects === 0) url = this.#resolve(spec.url);
      const sameOrigin = url.origin === this.origin;
      // Whether this request is (one of) the plain-HTTP probe(s).
      const probe = this.#probing && sameOrigin && url.protocol === "http:";
      const headers = new Headers(spec.headers);
      headers.set("user-agent", this.#settings.userAgent);
      if (sameOrigin) {
        const a = await this.#authorization(spec, challengeScope);
        if (a) headers.set("authorization", a);
      }
      let res: Response;
      try {
        res = await this.#send(
          url,
          {
            method,
            headers,
            body: redirects === 0
              ? spec.body as BodyInit | undefined
              : undefined,
            client: sameOrigin ? await this.#httpClient() : undefined,
          },
          replayable,
          spec.signal,
          probe,
          spec.serverBytes,
        );
      } catch (e) {
        if (e instanceof TryTls) {
          this.#tryTls();
          continue;
        }
        if (!(e instanceof FallBackToHttp)) throw e;
        this.#scheme = "http";
        url = this.#resolve(spec.url);
        continue;
      }
      if (probe) {
        // An answer to the plain probe: a registry's errors are JSON.
        const tls = res.status === 400 &&
          !(res.headers.get("content-type") ?? "").includes("json");
        if (!tls) this.#probing = false;
        else {
          this.#tryTls(); // for this request if it can be sent again, else the next
          if (replayable) {
            await discard(res);
            continue;
          }
        }
      }
      if (res.status === 401 && sameOrigin) {
        const challenge = pickChallenge(res.headers.get("www-authenticate"));
        await discard(res);
        if (challenge && !authRetried && replayable) {
          authRetried = true;
          this.#auth = challenge.auth;
          challengeScope = challenge.scope;
          // The token in use (if any) was refused: get a new one.
          this.#tokens.delete(this.#scopes(spec).join(" "));
          continue;
        }
        const creds = await this.#credentials(spec.repository);
        throw new RegistryUnauthorized(this.name, spec.subject, !!creds);
      }
      if (res.status === 403) {
        await discard(res);
        throw new RegistryDenied(
          this.name,
          spec.subject,
          spec.push ? "push" : "pull",
        );
      }
      const location = res.headers.get("location");
      if (
        spec.followRedirects && res.status >= 300 && res.status < 400 &&
        location
      ) {
        await discard(res);
        if (++redirects > MAX_REDIRECTS) {
          throw new RegistryError(
            this.name,
            `${spec.subject}: more than ${MAX_REDIRECTS} redirects; the registry is misconfigured`,
          );
        }
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          throw new RegistryError(
            this.name,
            `${spec.subject}: a redirect to something that is not a URL`,
          );
        }
        if (next.protocol !== "https:" && next.protocol !== "http:") {
          throw new RegistryError(
            this.name,
            `${spec.subject}: a redirect to a ${next.protocol} URL; refused`,
          );
        }
        if (
          next.protocol === "http:" &&
          !plainHttpAllowed(next.host, this.#settings.insecure)
        ) throw new InsecureRegistry(next.host);
        url = next;
        if (res.status === 303) method = "GET";
        continue;
      }
      return res;
    }
  }

  #resolve(u: string | URL): URL {
    return u instanceof URL ? u : new URL(u, this.origin);
  }
}

/** Thrown by #send when an allowed-plain host does not speak TLS. */
class FallBackToHttp extends Error {}

/** Thrown by #send when a loopback host tried over plain HTTP dropped the request. */
class TryTls extends Error {}

function basic(c: Credentials): string {
  return "Basic " +
    new TextEncoder().encode(`${c.username}:${c.password}`).toBase64();
}

function pickChallenge(
  header: string | null,
): { auth: AuthScheme; scope?: string } | undefined {
  if (!header) return undefined;
  const cs = parseChallenges(header);
  const bearer = cs.find((c) => c.scheme === "bearer" && c.params.realm);
  if (bearer) {
    return {
      auth: {
        scheme: "bearer",
        realm: bearer.params.realm,
        service: bearer.params.service,
      },
      scope: bearer.params.scope,
    };
  }
  if (cs.some((c) => c.scheme === "basic")) {
    return { auth: { scheme: "basic" } };
  }
  return undefined;
}

/**
 * What to do about a certificate the TLS stack refused. A self-signed CA
 * certificate served as the registry's own (`openssl req -x509` makes one)
 * is refused even when trusted (rustls: CaUsedAsEndEntity); otherwise the
 * CA is named where this client looks (the `certsDirs` it was given).
 */
function certificateAdvice(
  why: string,
  host: string,
  certsDirs: readonly string[],
): string {
  if (why.includes("CaUsedAsEndEntity")) {
    return "the registry serves a CA certificate as its own; issue it a server " +
      "certificate signed by that CA (basicConstraints CA:FALSE) and keep the CA as ca.crt";
  }
  const where = certsDirs.map((d) => `${d}/${host}/ca.crt`);
  return `if the registry uses a private CA, put it in ${
    where.length ? where.join(" or ") : `/etc/containers/certs.d/${host}/ca.crt`
  }`;
}
