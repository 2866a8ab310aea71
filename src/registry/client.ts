/**
 * The OCI distribution client: manifests and blobs of one or more
 * registries, verified against their digests, with the ecosystem's
 * authentication (anonymous, basic, bearer tokens), TLS roots from certs.d,
 * bounded retries and resumable downloads. `pullImage` and `pushImage` are
 * built on it.
 *
 * One HTTP client (connection pool) per registry host; `close()` ends them.
 * Every call takes an `AbortSignal` and stops cleanly (rejecting with the
 * signal's reason) when it fires.
 *
 * @example Read a manifest and a blob
 * ```ts ignore
 * import { parseReference, RegistryClient } from "./mod.ts";
 * const client = new RegistryClient();
 * const ref = parseReference("localhost:5000/app:v1");
 * const m = await client.getManifest(ref);
 * const doc = JSON.parse(new TextDecoder().decode(m.bytes));
 * const cfg = client.getBlob(ref, doc.config.digest, doc.config.size);
 * console.log(m.digest, await new Response(cfg).json());
 * client.close();
 * ```
 *
 * @module
 */

import { DigestMismatch, RegistryError, RegistryNotFound } from "../errors.ts";
import { type Credentials, readCredentials } from "./auth_file.ts";
import {
  blobHash,
  digestOfAsync,
  parseDigest,
  verifyBytes,
} from "../image/digest.ts";
import { backoff, discard, errorDetail, readBounded, sleep } from "./_http.ts";
import { MANIFEST_TYPES } from "../image/media_types.ts";
import { parseReference, type Reference } from "../image/reference.ts";
import { DEFAULT_CERTS_DIRS } from "./tls.ts";
import type {
  HostTransport,
  RequestSpec,
  TransportSettings,
} from "./_transport.ts";
import { repositoryScope } from "./_http.ts";
import { loadModule } from "../_load_module.ts";

const transportImpl = () =>
  loadModule<typeof import("./_transport.ts")>(
    new URL("./_transport.ts", import.meta.url),
  );

/** Largest manifest accepted (containerd and distribution cap at 4 MiB). */
export const MAX_MANIFEST_SIZE = 4 << 20;

/** A repository: a {@link Reference}, or `host/repository` text. */
export type Repository = Pick<Reference, "host" | "repository"> | string;

/** Options of {@link RegistryClient}. */
export interface RegistryClientOptions {
  /**
   * Environment lookup for the auth files (`REGISTRY_AUTH_FILE`,
   * `XDG_RUNTIME_DIR`, `HOME`).
   * @default Deno.env.get
   */
  env?: (key: string) => string | undefined;
  /** Effective uid, for the auth file's default place. @default Deno.uid() */
  uid?: number;
  /**
   * Where credentials come from; replaces the auth files.
   * @default reads the auth files (see auth_file.ts)
   */
  credentials?: (
    host: string,
    repository: string | undefined,
  ) => Promise<Credentials | undefined>;
  /** Hosts that may be spoken to over plain HTTP besides loopback. @default [] */
  insecure?: readonly string[];
  /**
   * Hosts to speak plain HTTP to without trying HTTPS first; each must be
   * loopback or in `insecure` (else {@link InsecureRegistry}, before any connection).
   * @default []
   */
  http?: readonly string[];
  /** certs.d roots holding `<host>/*.crt`. @default ["/etc/containers/certs.d", "/etc/docker/certs.d"] */
  certsDirs?: readonly string[];
  /** Tries per request on network errors, 5xx and 429. @default 4 */
  tries?: number;
  /** Tries per blob download on cut connections (resuming with Range). @default 5 */
  blobTries?: number;
  /** Backoff base in ms. @default 250 */
  baseDelayMs?: number;
  /** Backoff cap in ms. @default 8000 */
  maxDelayMs?: number;
  /** Longest `Retry-After` waited for, in ms. @default 60000 */
  maxRetryAfterMs?: number;
  /**
   * Longest wait, in ms, with nothing moving on a connection: no reply to a
   * request, no request body taken, no byte of a reply being read (time the
   * caller takes between reads does not count). A stalled blob download
   * resumes like a cut one (up to `blobTries`); a stalled request is retried
   * up to `tries` where its body can be sent again; then
   * {@link RegistryError}. 0 waits forever.
   * @default 30000
   */
  idleTimeoutMs?: number;
  /** Clock in ms since the epoch (token expiry). @default Date.now */
  now?: () => number;
  /** User-Agent. @default "layerfs" */
  userAgent?: string;
}

/** Options of one call. */
export interface CallOptions {
  /** Stops the call (and its retries) cleanly. */
  signal?: AbortSignal;
}

/** A manifest as fetched, verified. */
export interface Manifest {
  /** Its media type (the reply's Content-Type, else the document's `mediaType`). */
  mediaType: string;
  /** Its digest (verified). */
  digest: string;
  /** Its bytes, exactly as served. */
  bytes: Uint8Array;
}

/** What a HEAD of a manifest tells. */
export interface ManifestHead {
  /** Its media type. */
  mediaType: string;
  /** Its digest (from `Docker-Content-Digest`, or the reference's), if known. */
  digest?: string;
  /** Its size, if given. */
  size?: number;
}

/** Where a blob's bytes come from for a push: bytes, or a function opening them (called again on a retry). */
export type BlobSource = Uint8Array | (() => ReadableStream<Uint8Array>);

/** Options of {@link RegistryClient.pushBlob}. */
export interface PushBlobOptions extends CallOptions {
  /** Upload in chunks of this many bytes (POST, PATCHes, PUT) instead of one PUT. @default monolithic */
  chunkSize?: number;
  /** Repositories on the same registry that may hold the blob: mounted from instead of uploaded. @default [] */
  mountFrom?: string[];
  /** Whole-upload tries when a stream source fails mid-way. @default 3 */
  uploadTries?: number;
}

/** How a push ended. */
export interface PushBlobResult {
  /** The blob's digest. */
  digest: string;
  /** "exists": already there; "mounted": from another repository; "uploaded". */
  how: "exists" | "mounted" | "uploaded";
}

function repoOf(r: Repository): { host: string; repository: string } {
  return typeof r === "string" ? parseReference(r) : r;
}

function validDigest(d: string, what: string): string {
  try {
    return parseDigest(d);
  } catch (e) {
    throw new DigestMismatch(
      what,
      "a valid digest",
      `${JSON.stringify(d)} (${(e as Error).message})`,
    );
  }
}

/** Media type from a Content-Type header, parameters dropped. */
function contentType(h: Headers): string | undefined {
  const v = h.get("content-type")?.split(";")[0].trim();
  return v || undefined;
}

/** See the module doc. */
export class RegistryClient {
  #settings: TransportSettings;
  #hosts = new Map<string, HostTransport>();
  #blobTries: number;

  /** Builds a client; nothing is connected until the first call. */
  constructor(options: RegistryClientOptions = {}) {
    const env = options.env ?? ((k: string) => Deno.env.get(k));
    const uid = options.uid ?? Deno.uid() ?? 0;
    this.#settings = {
      insecure: options.insecure ?? [],
      http: options.http ?? [],
      certsDirs: options.certsDirs ?? DEFAULT_CERTS_DIRS,
      credentials: options.credentials ??
        ((host, repo) => readCredentials(host, repo, { env, uid })),
      tries: Math.max(1, options.tries ?? 4),
      baseDelayMs: options.baseDelayMs ?? 250,
      maxDelayMs: options.maxDelayMs ?? 8000,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
      idleTimeoutMs: Math.max(0, options.idleTimeoutMs ?? 30_000),
      now: options.now ?? Date.now,
      userAgent: options.userAgent ?? "layerfs",
    };
    this.#blobTries = Math.max(1, options.blobTries ?? 5);
  }

  /** Closes every host's connection pool. The client may be used again after. */
  close(): void {
    for (const h of this.#hosts.values()) h.close();
    this.#hosts.clear();
  }

  /**
   * The transport of `host` (Docker Hub's API lives at registry-1.docker.io).
   * Its module (HTTP, TLS, authentication: ~25 KB) loads on the first
   * request, so importing mod.ts does not pay for it.
   */
  async #host(host: string): Promise<HostTransport> {
    const api = host === "docker.io" ? "registry-1.docker.io" : host;
    let t = this.#hosts.get(api);
    if (!t) {
      const { HostTransport } = await transportImpl();
      t = this.#hosts.get(api); // another call may have made it meanwhile
      if (!t) {
        t = new HostTransport(host, api, this.#settings);
        this.#hosts.set(api, t);
      }
    }
    return t;
  }

  async #fail(
    res: Response,
    host: string,
    subject: string,
    doing: string,
  ): Promise<never> {
    if (res.status === 404) {
      await discard(res);
      throw new RegistryNotFound(host, subject);
    }
    const detail = await errorDetail(res);
    throw new RegistryError(
      host,
      `${doing} ${subject} failed: HTTP ${res.status}${
        detail ? ` (${detail})` : ""
      }`,
      { status: res.status },
    );
  }

  /**
   * Checks that the API answers at `host` (`GET /v2/`), authenticating as
   * configured: what `layerfs login` does before storing credentials.
   *
   * @throws {RegistryUnauthorized} when the credentials are refused.
   */
  async ping(host: string, options: CallOptions = {}): Promise<void> {
    const t = await this.#host(host);
    const res = await t.request({
      method: "GET",
      url: "/v2/",
      repository: "",
      subject: host,
      signal: options.signal,
    });
    if (!res.ok) await this.#fail(res, host, host, "Checking");
    await discard(res);
  }

  /**
   * Fetches a manifest or index and verifies its bytes: against the
   * reference's digest when it has one, and against `Docker-Content-Digest`
   * when the registry sends it. Over {@link MAX_MANIFEST_SIZE} is refused.
   *
   * @param ref The image reference (tag or digest).
   * @param options `accept`: media types asked for (default: OCI and Docker manifests and indexes).
   * @throws {RegistryNotFound} no such manifest.
   * @throws {DigestMismatch} the bytes do not match a digest.
   * @throws {RegistryError} too large, or other HTTP failures.
   */
  async getManifest(
    ref: Reference,
    options: CallOptions & { accept?: readonly string[] } = {},
  ): Promise<Manifest> {
    const t = await this.#host(ref.host);
    const subject = ref.toString();
    const res = await t.request({
      method: "GET",
      url: `/v2/${ref.repository}/manifests/${ref.manifestRef}`,
      headers: { accept: (options.accept ?? MANIFEST_TYPES).join(", ") },
      repository: ref.repository,
      subject,
      signal: options.signal,
    });
    if (res.status !== 200) {
      await this.#fail(res, ref.host, subject, "Fetching the manifest of");
    }
    const bytes = await readBounded(
      res,
      MAX_MANIFEST_SIZE,
      ref.host,
      `the manifest of ${subject}`,
    );
    const digest = ref.digest ?? await digestOfAsync(bytes);
    await verifyBytes(subject, bytes, digest);
    const header = res.headers.get("docker-content-digest");
    if (header !== null) {
      await verifyBytes(
        `${subject} (Docker-Content-Digest)`,
        bytes,
        validDigest(header, `${subject} (Docker-Content-Digest)`),
      );
    }
    let mediaType = contentType(res.headers);
    if (!mediaType || !MANIFEST_TYPES.includes(mediaType)) {
      try {
        const doc = JSON.parse(new TextDecoder().decode(bytes));
        if (typeof doc?.mediaType === "string") mediaType = doc.mediaType;
      } catch {
        throw new RegistryError(
          ref.host,
          `the manifest of ${subject} is not JSON`,
        );
      }
    }
    return { mediaType: mediaType ?? "", digest, bytes };
  }

  /**
   * HEADs a manifest: its media type, digest and size without its body.
   *
   * @returns What the registry says, or undefined when there is no such manifest.
   */
  async headManifest(
    ref: Reference,
    options: CallOptions & { accept?: readonly string[] } = {},
  ): Promise<ManifestHead | undefined> {
    const t = await this.#host(ref.host);
    const subject = ref.toString();
    const res = await t.request({
      method: "HEAD",
      url: `/v2/${ref.repository}/manifests/${ref.manifestRef}`,
      headers: { accept: (options.accept ?? MANIFEST_TYPES).join(", ") },
      repository: ref.repository,
      subject,
      signal: options.signal,
    });
    await discard(res);
    if (res.status === 404) return undefined;
    if (res.status !== 200) {
      await this.#fail(res, ref.host, subject, "Checking the manifest of");
    }
    const header = res.headers.get("docker-content-digest");
    const digest = header === null
      ? ref.digest
      : validDigest(header, `${subject} (Docker-Content-Digest)`);
    if (ref.digest && digest !== ref.digest) {
      throw new DigestMismatch(subject, ref.digest, digest!);
    }
    const len = res.headers.get("content-length");
    return {
      mediaType: contentType(res.headers) ?? "",
      digest,
      size: len !== null && /^\d+$/.test(len) ? Number(len) : undefined,
    };
  }

  /**
   * Uploads a manifest under the reference's tag (or digest).
   *
   * @returns The manifest's digest (checked against the registry's `Docker-Content-Digest`).
   * @throws {DigestMismatch} `bytes` do not match the reference's digest, or the registry's.
   */
  async putManifest(
    ref: Reference,
    mediaType: string,
    bytes: Uint8Array,
    options: CallOptions = {},
  ): Promise<string> {
    const subject = ref.toString();
    if (bytes.length > MAX_MANIFEST_SIZE) {
      throw new RegistryError(
        ref.host,
        `the manifest for ${subject} is larger than ${MAX_MANIFEST_SIZE} bytes; registries refuse it`,
      );
    }
    const digest = ref.digest ?? await digestOfAsync(bytes);
    await verifyBytes(subject, bytes, digest);
    const t = await this.#host(ref.host);
    const res = await t.request({
      method: "PUT",
      url: `/v2/${ref.repository}/manifests/${ref.manifestRef}`,
      headers: { "content-type": mediaType },
      body: bytes,
      repository: ref.repository,
      push: true,
      subject,
      signal: options.signal,
    });
    if (res.status !== 201 && res.status !== 200) {
      await this.#fail(res, ref.host, subject, "Uploading the manifest of");
    }
    await discard(res);
    const header = res.headers.get("docker-content-digest");
    if (header !== null && header !== digest && header.startsWith("sha256:")) {
      throw new DigestMismatch(`${subject} (as stored)`, digest, header);
    }
    return digest;
  }

  /**
   * Whether the repository has the blob (HEAD).
   *
   * @example
   * ```ts ignore
   * const there = await client.hasBlob("localhost:5000/app", "sha256:...");
   * ```
   */
  async hasBlob(
    repo: Repository,
    digest: string,
    options: CallOptions = {},
  ): Promise<boolean> {
    const { host, repository } = repoOf(repo);
    validDigest(digest, `${host}/${repository} blob`);
    const subject = `${host}/${repository}@${digest}`;
    const res = await (await this.#host(host)).request({
      method: "HEAD",
      url: `/v2/${repository}/blobs/${digest}`,
      repository,
      subject,
      followRedirects: true,
      signal: options.signal,
    });
    await discard(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    return await this.#fail(res, host, subject, "Checking");
  }

  /**
   * Streams a blob, verified as it streams: more than `size` bytes, or a
   * digest that does not match at the end, errors the stream with
   * {@link DigestMismatch}. A cut connection resumes with `Range` where the
   * registry serves ranges (else the download restarts and the bytes
   * already delivered are skipped), up to `blobTries` connections.
   * Redirects (to a CDN or object store) are followed without credentials.
   * A bad digest or size throws at the call; everything that needs the
   * registry (connecting, an insecure registry refused, HTTP errors) fails
   * the stream on its first read.
   *
   * @param repo The repository.
   * @param digest The blob's digest.
   * @param size Its size in bytes (from the manifest).
   * @returns The blob's bytes; cancel it to stop the download.
   */
  getBlob(
    repo: Repository,
    digest: string,
    size: number,
    options: CallOptions = {},
  ): ReadableStream<Uint8Array> {
    const { host, repository } = repoOf(repo);
    const subject = `${host}/${repository}@${digest}`;
    validDigest(digest, subject);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new DigestMismatch(subject, "a size >= 0", String(size));
    }
    const transport = () => this.#host(host);
    const tries = this.#blobTries;
    const settings = this.#settings;
    const fail = this.#fail.bind(this);
    const signal = options.signal;
    async function* chunks(): AsyncGenerator<Uint8Array> {
      const t = await transport();
      const hash = blobHash(digest, size);
      let offset = 0;
      let ranges = false;
      let lastError: unknown;
      for (let attempt = 1; attempt <= tries; attempt++) {
        if (attempt > 1) {
          await sleep(
            backoff(attempt - 1, settings.baseDelayMs, settings.maxDelayMs),
            signal,
          );
        }
        const resume = offset > 0 && ranges;
        const res = await t.request({
          method: "GET",
          url: `/v2/${repository}/blobs/${digest}`,
          headers: resume ? { range: `bytes=${offset}-` } : {},
          repository,
          subject,
          followRedirects: true,
          signal,
        });
        let skip = 0;
        if (res.status === 206 && resume) {
          const start = /^bytes (\d+)-/.exec(
            res.headers.get("content-range") ?? "",
          )?.[1];
          if (start === undefined || Number(start) !== offset) {
            await discard(res);
            throw new RegistryError(
              host,
              `${subject}: asked for bytes from ${offset}, got ${
                JSON.stringify(res.headers.get("content-range"))
              }`,
            );
          }
        } else if (res.status === 200) {
          skip = offset;
          const len = res.headers.get("content-length");
          if (len !== null && Number(len) !== size) {
            await discard(res);
            throw new DigestMismatch(subject, `${size} bytes`, `${len} bytes`);
          }
        } else {
          await fail(res, host, subject, "Downloading");
        }
        ranges = res.headers.get("accept-ranges") === "bytes" ||
          res.status === 206;
        if (!res.body) {
          lastError = new Error("the reply has no body");
          continue;
        }
        const reader = res.body.getReader();
        try {
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            let chunk = value;
            if (skip > 0) {
              const n = Math.min(skip, chunk.length);
              chunk = chunk.subarray(n);
              skip -= n;
              if (chunk.length === 0) continue;
            }
            if (offset + chunk.length > size) {
              throw new DigestMismatch(
                subject,
                `${size} bytes`,
                `more than ${size} bytes`,
              );
            }
            hash.update(chunk);
            offset += chunk.length;
            yield chunk;
          }
        } catch (e) {
          if (signal?.aborted) throw signal.reason;
          if (e instanceof DigestMismatch) throw e;
          lastError = e; // A cut connection: resume.
          continue;
        } finally {
          await reader.cancel().catch(() => {});
        }
        if (offset < size) {
          lastError = new Error(`the reply ended at byte ${offset}`);
          continue;
        }
        const got = await hash.digest();
        if (got !== digest) throw new DigestMismatch(subject, digest, got);
        return;
      }
      throw new RegistryError(
        host,
        `downloading ${subject} failed after ${tries} connections (${
          lastError instanceof RegistryError
            ? lastError.why
            : String((lastError as Error)?.message ?? lastError).slice(0, 200)
        }); retry later`,
        { cause: lastError },
      );
    }
    return ReadableStream.from(chunks());
  }

  /**
   * Pushes a blob unless the repository has it: HEAD first, then a
   * cross-repository mount from each of `mountFrom` (when the registry
   * offers it), else an upload, monolithic (POST, PUT ?digest=) or chunked
   * (POST, PATCH per chunk, PUT ?digest=). The bytes are hashed as they go
   * and refused before the final PUT when they do not match `digest`/`size`.
   *
   * @throws {DigestMismatch} the source's bytes are not `digest`/`size`.
   * @throws {RegistryError} the registry refused the upload.
   */
  async pushBlob(
    repo: Repository,
    blob: { digest: string; size: number },
    source: BlobSource,
    options: PushBlobOptions = {},
  ): Promise<PushBlobResult> {
    const { host, repository } = repoOf(repo);
    const { digest } = blob;
    const subject = `${host}/${repository}@${digest}`;
    validDigest(digest, subject);
    if (await this.hasBlob({ host, repository }, digest, options)) {
      return { digest, how: "exists" };
    }
    const t = await this.#host(host);
    const spec = (s: Omit<RequestSpec, "repository" | "subject" | "signal">) =>
      t.request({
        repository,
        subject,
        push: true,
        signal: options.signal,
        ...s,
      });
    let location: URL | undefined;
    for (const from of options.mountFrom ?? []) {
      const q = new URLSearchParams({ mount: digest, from });
      const res = await spec({
        method: "POST",
        url: `/v2/${repository}/blobs/uploads/?${q}`,
        extraScopes: [repositoryScope(from)],
      });
      if (res.status === 201) {
        await discard(res);
        return { digest, how: "mounted" };
      }
      if (res.status !== 202) {
        await this.#fail(res, host, subject, "Mounting");
      }
      // Not mountable (no such blob there, or no permission): the reply
      // opened an upload; use it.
      location = this.#location(res, t.origin, subject);
      await discard(res);
      break;
    }
    const uploadTries = Math.max(1, options.uploadTries ?? 3);
    let lastError: unknown;
    for (let attempt = 1; attempt <= uploadTries; attempt++) {
      if (!location) {
        const res = await spec({
          method: "POST",
          url: `/v2/${repository}/blobs/uploads/`,
        });
        if (res.status !== 202) {
          await this.#fail(res, host, subject, "Starting the upload of");
        }
        location = this.#location(res, t.origin, subject);
        await discard(res);
      }
      try {
        await (options.chunkSize
          ? this.#uploadChunked(
            spec,
            location,
            blob,
            source,
            options.chunkSize,
            subject,
          )
          : this.#uploadMonolithic(spec, location, blob, source, subject));
        return { digest, how: "uploaded" };
      } catch (e) {
        // A connection lost mid-upload (retries exhausted, or a stream body
        // that cannot be resent), or a session the registry lost track of
        // after a cut PATCH (416): start a new upload. The rest is final.
        if (options.signal?.aborted || !(e instanceof RegistryError)) throw e;
        // The final PUT may have landed with its reply lost: then the retried
        // PUT finds no session. The blob is there; that is success.
        if (
          await this.hasBlob({ host, repository }, digest, options).catch(
            () => false,
          )
        ) return { digest, how: "uploaded" };
        if (e.status !== undefined && e.status !== 416) throw e;
        lastError = e;
        location = undefined;
      }
    }
    throw lastError;
  }

  /** The upload session's URL from `res`, relative to the request's URL `base`. */
  #location(res: Response, base: URL | string, subject: string): URL {
    const host = new URL(base).host;
    const loc = res.headers.get("location");
    if (!loc) {
      throw new RegistryError(
        host,
        `${subject}: the upload reply has no Location; the registry is not OCI-conformant`,
      );
    }
    try {
      return new URL(loc, base);
    } catch {
      throw new RegistryError(
        host,
        `${subject}: upload Location is not a URL`,
      );
    }
  }

  async #finish(
    res: Response,
    subject: string,
    host: string,
    digest: string,
  ): Promise<void> {
    if (res.status !== 201 && res.status !== 204) {
      await this.#fail(res, host, subject, "Uploading");
    }
    await discard(res);
    const header = res.headers.get("docker-content-digest");
    if (header !== null && header !== digest) {
      throw new DigestMismatch(`${subject} (as stored)`, digest, header);
    }
  }

  async #uploadMonolithic(
    spec: (
      s: Omit<RequestSpec, "repository" | "subject" | "signal">,
    ) => Promise<Response>,
    location: URL,
    blob: { digest: string; size: number },
    source: BlobSource,
    subject: string,
  ): Promise<void> {
    const url = new URL(location);
    url.searchParams.set("digest", blob.digest);
    let body: Uint8Array | ReadableStream<Uint8Array>;
    let check: ReturnType<typeof verifying> | undefined;
    if (source instanceof Uint8Array) {
      if (source.length !== blob.size) {
        throw new DigestMismatch(
          subject,
          `${blob.size} bytes`,
          `${source.length} bytes`,
        );
      }
      await verifyBytes(subject, source, blob.digest);
      body = source;
    } else {
      // Hashed on the way; a mismatch errors the body, so the registry
      // never commits it (and would refuse it by its digest anyway).
      check = verifying(subject, blob);
      body = source().pipeThrough(check.stream);
    }
    const res = await spec({
      method: "PUT",
      url,
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(blob.size),
      },
      body,
    }).catch((e) => {
      throw check?.error ?? e;
    });
    if (check?.error) {
      await discard(res);
      throw check.error;
    }
    await this.#finish(res, subject, url.host, blob.digest);
  }

  async #uploadChunked(
    spec: (
      s: Omit<RequestSpec, "repository" | "subject" | "signal">,
    ) => Promise<Response>,
    location: URL,
    blob: { digest: string; size: number },
    source: BlobSource,
    chunkSize: number,
    subject: string,
  ): Promise<void> {
    const hash = blobHash(blob.digest, blob.size);
    let offset = 0;
    let url = location;
    const send = async (chunk: Uint8Array) => {
      if (offset + chunk.length > blob.size) {
        throw new DigestMismatch(
          subject,
          `${blob.size} bytes`,
          `more than ${blob.size} bytes`,
        );
      }
      hash.update(chunk);
      const res = await spec({
        method: "PATCH",
        url,
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `${offset}-${offset + chunk.length - 1}`,
          "content-length": String(chunk.length),
        },
        body: chunk,
      });
      if (res.status !== 202) {
        await this.#fail(res, url.host, subject, "Uploading a chunk of");
      }
      url = this.#location(res, url, subject);
      await discard(res);
      offset += chunk.length;
    };
    if (source instanceof Uint8Array) {
      for (let i = 0; i < source.length; i += chunkSize) {
        await send(source.subarray(i, Math.min(source.length, i + chunkSize)));
      }
    } else {
      // Chunks of exactly chunkSize (registries such as GCS need equal chunks).
      const buf = new Uint8Array(chunkSize);
      let fill = 0;
      for await (const part of source()) {
        let p = part;
        while (p.length > 0) {
          const n = Math.min(p.length, chunkSize - fill);
          buf.set(p.subarray(0, n), fill);
          fill += n;
          p = p.subarray(n);
          if (fill === chunkSize) {
            await send(buf.slice());
            fill = 0;
          }
        }
      }
      if (fill > 0) await send(buf.slice(0, fill));
    }
    if (offset !== blob.size) {
      throw new DigestMismatch(
        subject,
        `${blob.size} bytes`,
        `${offset} bytes`,
      );
    }
    const got = await hash.digest();
    if (got !== blob.digest) {
      throw new DigestMismatch(subject, blob.digest, got);
    }
    const put = new URL(url);
    put.searchParams.set("digest", blob.digest);
    const res = await spec({
      method: "PUT",
      url: put,
      headers: { "content-length": "0" },
      serverBytes: blob.size,
    });
    await this.#finish(res, subject, put.host, blob.digest);
  }
}

/** A pass-through that errors (with DigestMismatch) when the bytes are not the blob; `error` keeps what it raised (fetch wraps body errors). */
function verifying(
  subject: string,
  blob: { digest: string; size: number },
): { stream: TransformStream<Uint8Array, Uint8Array>; error?: DigestMismatch } {
  const hash = blobHash(blob.digest, blob.size);
  let n = 0;
  const out: {
    stream: TransformStream<Uint8Array, Uint8Array>;
    error?: DigestMismatch;
  } = {} as never;
  const fail = (e: DigestMismatch) => {
    out.error = e;
    throw e;
  };
  out.stream = new TransformStream({
    transform(chunk, c) {
      n += chunk.length;
      if (n > blob.size) {
        fail(
          new DigestMismatch(
            subject,
            `${blob.size} bytes`,
            `more than ${blob.size} bytes`,
          ),
        );
      }
      hash.update(chunk);
      c.enqueue(chunk);
    },
    async flush() {
      if (n !== blob.size) {
        fail(new DigestMismatch(subject, `${blob.size} bytes`, `${n} bytes`));
      }
      const got = await hash.digest();
      if (got !== blob.digest) {
        fail(new DigestMismatch(subject, blob.digest, got));
      }
    },
  });
  return out;
}
