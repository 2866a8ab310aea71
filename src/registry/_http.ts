/**
 * Internal: small HTTP helpers shared by the transport and the client:
 * bounded body reads, abort-aware sleeps, backoff, `Retry-After`, and the
 * registry's error documents made safe to print.
 *
 * @module
 */

import { RegistryError } from "../errors.ts";

/** Largest JSON document read from a registry or token server that is not a manifest. */
export const MAX_JSON_BODY = 1 << 20;

/**
 * Reads a response body of at most `max` bytes; refuses a larger one without
 * reading it all (a declared `Content-Length` over the cap is refused unread).
 *
 * @throws {RegistryError} naming `what` when the body is over `max`.
 */
export async function readBounded(
  res: Response,
  max: number,
  registry: string,
  what: string,
): Promise<Uint8Array> {
  const tooLarge = () =>
    new RegistryError(
      registry,
      `${what} is larger than ${max} bytes; refused (a registry never needs that much)`,
      { status: res.status },
    );
  const declared = res.headers.get("content-length");
  if (declared !== null && Number(declared) > max) {
    await res.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (!res.body) return new Uint8Array();
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** Discards a body we do not need, so its connection returns to the pool. */
export async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => {});
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Exponential backoff with jitter: base * 2^(attempt-1), up to max. */
export function backoff(attempt: number, base: number, max: number): number {
  const d = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return d / 2 + Math.random() * d / 2;
}

/**
 * `Retry-After` in milliseconds (seconds or an HTTP date), or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { retryAfterMs } from "./_http.ts";
 * assert.equal(retryAfterMs(new Headers({ "retry-after": "2" }), 0), 2000);
 * ```
 */
export function retryAfterMs(
  headers: Headers,
  now: number,
): number | undefined {
  const v = headers.get("retry-after")?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/**
 * The first error of a registry's error document (`{"errors": [{"code",
 * "message"}]}`) as one printable line of at most 200 characters, or "".
 * The body is untrusted: control characters are dropped.
 */
export async function errorDetail(res: Response): Promise<string> {
  let text: string;
  try {
    text = new TextDecoder().decode(
      await readBounded(res, 64 << 10, "", "error body"),
    );
  } catch {
    return "";
  }
  let detail = "";
  try {
    const doc = JSON.parse(text);
    const e = Array.isArray(doc?.errors) ? doc.errors[0] : undefined;
    if (e && (typeof e.code === "string" || typeof e.message === "string")) {
      detail = [e.code, e.message].filter((x) => typeof x === "string").join(
        ": ",
      );
    }
  } catch {
    // Not JSON: nothing we can name safely.
  }
  // deno-lint-ignore no-control-regex
  detail = detail.replace(/[\u0000-\u001f\u007f]+/g, " ").trim();
  return detail.length > 200 ? detail.slice(0, 200) + "..." : detail;
}

/** The scope of a repository: `repository:NAME:pull[,push]`. */
export function repositoryScope(repository: string, push = false): string {
  return `repository:${repository}:${push ? "pull,push" : "pull"}`;
}
