/**
 * Internal: the transport's stall detection. A request gets its own abort
 * controller and a watch that aborts it when the network has kept us
 * waiting for `ms` with nothing moving: no reply yet, no request body pulled
 * by the connection, no reply byte while the caller is reading. Time spent
 * on our side (extracting a layer between reads, compressing the next piece
 * of an upload) does not count: bodies are re-wrapped so the watch is armed
 * only while the network is awaited.
 *
 * @module
 */

import { RegistryError } from "../errors.ts";

/** The abort reason of a stalled request (never escapes the transport). */
class Stalled extends Error {}

/**
 * A request body of bytes is handed to the connection whole (re-streaming it
 * would drop its Content-Length: Deno sends streams chunked), so its
 * progress is not seen: the reply wait gets one idle period more per this
 * many bytes, i.e. an upload counts as stalled below 1 MiB per period.
 */
const BYTES_PER_PERIOD = 1 << 20;

/**
 * What a registry is given per idle period to work through an upload before
 * it replies (a final PUT: the digest checked, the blob moved into place,
 * which on an object store is a copy): 256 MiB, so a 5 GB blob's commit may
 * take 10 minutes at the default 30 s.
 */
const SERVER_BYTES_PER_PERIOD = 256 << 20;

/** Null-body statuses: a Response with one of them cannot be given a body. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** One request's watch: its controller, the caller's signal, a timer. */
export class StallWatch {
  readonly controller: AbortController = new AbortController();
  #ms: number;
  #armedMs = 0;
  #timer?: ReturnType<typeof setTimeout>;
  /** The wait in progress ({@link race}), rejected when the watch fires. */
  #stall?: PromiseWithResolvers<never>;
  #signal?: AbortSignal;
  #forward = () => this.controller.abort(this.#signal!.reason);

  /** Aborts the request when `signal` does, or when armed `ms` without a kick. */
  constructor(ms: number, signal?: AbortSignal) {
    this.#ms = ms;
    this.#signal = signal;
    if (signal?.aborted) this.controller.abort(signal.reason);
    else signal?.addEventListener("abort", this.#forward, { once: true });
  }

  /** Whether the request was aborted because it stalled. */
  get stalled(): boolean {
    return this.controller.signal.reason instanceof Stalled;
  }

  /** The countdown last started, in ms (what a stall waited). */
  get armedMs(): number {
    return this.#armedMs;
  }

  /** (Re)starts the countdown, `periods` idle times long; a time of 0 disables it. */
  arm(periods = 1): void {
    clearTimeout(this.#timer);
    if (!(this.#ms > 0 && this.#ms < Infinity)) return;
    this.#armedMs = this.#ms * periods;
    this.#timer = setTimeout(() => {
      this.controller.abort(new Stalled("stalled"));
      this.#stall?.reject(this.controller.signal.reason);
    }, this.#armedMs);
  }

  /**
   * `p`, or a rejection as soon as the watch fires. The abort alone did
   * not always end the wait: a download stalled on every connection hung
   * in ~1 of 6 runs on a loaded machine (and once in CI), somewhere inside
   * fetch. A Response that `p` gives after losing is cancelled.
   */
  async race<T>(p: Promise<T>): Promise<T> {
    const stall = Promise.withResolvers<never>();
    this.#stall = stall;
    if (this.stalled) stall.reject(this.controller.signal.reason);
    try {
      return await Promise.race([p, stall.promise]);
    } catch (e) {
      if (this.stalled) {
        p.then((v) => {
          if (v instanceof Response) v.body?.cancel().catch(() => {});
        }, () => {});
      }
      throw e;
    } finally {
      if (this.#stall === stall) this.#stall = undefined;
    }
  }

  /** Stops the countdown (the caller has what it waited for). */
  disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The request is over: no timer, no listener on the caller's signal. */
  end(): void {
    this.disarm();
    this.#signal?.removeEventListener("abort", this.#forward);
  }

  /**
   * Starts the countdown for `body` being sent: a stream body re-arms the
   * watch on every pull (an upload that moves is not stalled); bytes add
   * periods by their size (see {@link BYTES_PER_PERIOD}). The reply wait
   * after the last byte grows with what the registry works through first:
   * `serverBytes`, or what a stream body sent (see
   * {@link SERVER_BYTES_PER_PERIOD}). Returns the body to send.
   */
  send(
    body: BodyInit | null | undefined,
    serverBytes = 0,
  ): BodyInit | null | undefined {
    const replyPeriods = (n: number) =>
      1 + Math.floor(Math.max(n, serverBytes) / SERVER_BYTES_PER_PERIOD);
    if (body instanceof Uint8Array) {
      this.arm(
        Math.ceil(body.length / BYTES_PER_PERIOD) + replyPeriods(body.length),
      );
      return body;
    }
    if (!(body instanceof ReadableStream)) {
      this.arm(replyPeriods(0));
      return body;
    }
    this.arm();
    const reader = (body as ReadableStream<Uint8Array>).getReader();
    let sent = 0;
    return new ReadableStream<Uint8Array>({
      // The connection pulled: it took the last piece. Producing the next
      // one (a layer compressed on the way) is our time, not the network's.
      pull: async (c) => {
        this.disarm();
        const r = await reader.read();
        if (r.done) {
          this.arm(replyPeriods(sent));
          c.close();
        } else {
          this.arm();
          sent += r.value.length;
          c.enqueue(r.value);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    }, { highWaterMark: 0 });
  }

  /**
   * `res` with its body re-wrapped: armed while a read waits for the
   * network; a stall errors the body with a {@link RegistryError} naming
   * `host`. The watch ends with the body (read to its end, failed or
   * cancelled).
   */
  reply(res: Response, host: string): Response {
    const body = res.body;
    if (!body || NULL_BODY.has(res.status)) {
      this.end();
      return res;
    }
    const reader = body.getReader();
    const wrapped = new ReadableStream<Uint8Array>({
      pull: async (c) => {
        this.arm();
        try {
          const r = await this.race(reader.read());
          if (r.done) {
            this.end();
            c.close();
          } else c.enqueue(r.value);
        } catch (e) {
          this.end();
          if (!this.stalled) throw e;
          reader.cancel().catch(() => {});
          throw this.error(host, e);
        } finally {
          this.disarm();
        }
      },
      cancel: (reason) => {
        this.end();
        return reader.cancel(reason);
      },
    }, { highWaterMark: 0 });
    return new Response(wrapped, {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
  }

  /** The error of a reply that stopped coming. */
  error(host: string, cause?: unknown): RegistryError {
    return new RegistryError(
      host,
      `no byte of its reply for ${
        this.#armedMs / 1000
      } s: the connection stalled; check the network, then retry`,
      { cause },
    );
  }
}
