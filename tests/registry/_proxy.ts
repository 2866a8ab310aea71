/**
 * Test fixture: an HTTP proxy on 127.0.0.1 in front of the real registry
 * that forwards every request and, as a test asks, injects one fault into
 * chosen replies: a blob cut halfway, 503 once, 429 with Retry-After, wrong
 * bytes, a redirect to another origin, a reply held until the test lets it
 * go, a reply trickled out slowly (so a test can interrupt a pull in the
 * middle of it), a reply that stalls after some bytes, or no reply at all
 * (the request's body left unread). It counts blob GETs in
 * flight (from the request until its reply body ended or was dropped), so a
 * test can see how many downloads ran at once.
 *
 * @module
 */

/** What to do with one request. */
export type Fault =
  | { kind: "forward" }
  | { kind: "cut"; at?: number }
  | {
    kind: "status";
    status: number;
    headers?: Record<string, string>;
    body?: Uint8Array<ArrayBuffer>;
  }
  | { kind: "corrupt" }
  | { kind: "lose-reply"; status: number }
  | { kind: "redirect"; to: string }
  | { kind: "slow"; chunk: number; delayMs: number }
  | { kind: "wait"; until: Promise<unknown> }
  | { kind: "stall"; at?: number }
  | { kind: "mute" };

/** A running proxy. */
export interface Proxy {
  /** `127.0.0.1:PORT`. */
  host: string;
  /** Every request seen: method, path, Range and Authorization presence. */
  seen: { method: string; path: string; range: string | null; auth: boolean }[];
  /** Hide range support: drop Range from requests and Accept-Ranges from replies. */
  stripRanges: boolean;
  /** Chooses the fault for each request (default: forward all). */
  fault: (req: Request, n: number) => Fault;
  /** Bytes sent so far by "slow" replies. */
  slowSent: number;
  /** Blob GETs whose reply is not finished, and the most there were at once. */
  blobGets: { now: number; peak: number };
  /** Stops it (letting every held request go first). */
  stop(): Promise<void>;
}

/** Starts a proxy forwarding to `target` (a base URL). */
export function startProxy(target: string): Proxy {
  const seen: Proxy["seen"] = [];
  const state: Proxy = {
    host: "",
    seen,
    stripRanges: false,
    fault: () => ({ kind: "forward" }),
    slowSent: 0,
    blobGets: { now: 0, peak: 0 },
    stop: () => Promise.resolve(),
  };
  // "mute" and "stall" hold until the client goes away or the proxy stops.
  const { promise: stopping, resolve: letGo } = Promise.withResolvers<void>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const url = new URL(req.url);
      if (req.method !== "GET" || !url.pathname.includes("/blobs/")) {
        return await handle(req, url);
      }
      const g = state.blobGets;
      g.peak = Math.max(g.peak, ++g.now);
      let res: Response;
      try {
        res = await handle(req, url);
      } catch (e) {
        g.now--;
        throw e;
      }
      if (!res.body) {
        g.now--;
        return res;
      }
      return new Response(untilDone(res.body, () => g.now--), res);
    },
  );
  async function handle(req: Request, url: URL): Promise<Response> {
    seen.push({
      method: req.method,
      path: url.pathname,
      range: req.headers.get("range"),
      auth: req.headers.has("authorization"),
    });
    let fault = state.fault(req, seen.length);
    if (fault.kind === "wait") {
      await fault.until; // then forwarded
      fault = { kind: "forward" };
    }
    if (fault.kind === "mute") {
      await stopping; // the body is never read, no reply is sent
      return new Response(null, { status: 503 });
    }
    if (fault.kind === "status") {
      await req.body?.cancel();
      return new Response(fault.body ?? "{}", {
        status: fault.status,
        headers: fault.headers,
      });
    }
    if (fault.kind === "redirect") {
      await req.body?.cancel();
      return new Response(null, {
        status: 307,
        headers: { location: fault.to + url.pathname + url.search },
      });
    }
    const headers = new Headers(req.headers);
    headers.delete("host");
    if (state.stripRanges) headers.delete("range");
    const res = await fetch(target + url.pathname + url.search, {
      method: req.method,
      headers,
      body: req.body,
      redirect: "manual",
    });
    if (fault.kind === "lose-reply") {
      // The registry did it; the client never hears so.
      await res.body?.cancel();
      return new Response("{}", { status: fault.status });
    }
    const out = new Headers(res.headers);
    const loc = out.get("location");
    if (loc) out.set("location", loc.replace(target, `http://${state.host}`));
    if (state.stripRanges) out.delete("accept-ranges");
    if (fault.kind === "forward" || !res.body) {
      return new Response(res.body, { status: res.status, headers: out });
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (fault.kind === "slow") {
      let off = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (off >= bytes.length) return c.close();
          await new Promise((r) => setTimeout(r, fault.delayMs));
          const part = bytes.subarray(off, off + fault.chunk);
          off += part.length;
          state.slowSent += part.length;
          try {
            c.enqueue(part);
          } catch { /* the client went away meanwhile */ }
        },
        cancel() {
          off = bytes.length;
        },
      });
      return new Response(body, { status: res.status, headers: out });
    }
    if (fault.kind === "stall") {
      // The declared length and the first `at` bytes; then nothing.
      const at = fault.at ?? bytes.length >> 1;
      let sent = false;
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          if (!sent) {
            sent = true;
            c.enqueue(bytes.subarray(0, at));
            return;
          }
          await stopping;
          c.close();
        },
      }, { highWaterMark: 0 });
      out.set("content-length", String(bytes.length));
      return new Response(body, { status: res.status, headers: out });
    }
    if (fault.kind === "corrupt") {
      const bad = bytes.slice();
      if (bad.length) bad[bad.length >> 1] ^= 0xff;
      return new Response(bad, { status: res.status, headers: out });
    }
    // A cut: the declared length, half the bytes, then the connection drops
    // (Deno.serve logs the stream error as "Error: cut by the test proxy").
    const at = fault.at ?? bytes.length >> 1;
    let sent = false;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (!sent) {
          sent = true;
          c.enqueue(bytes.subarray(0, at));
          return;
        }
        c.error(new Error("cut by the test proxy"));
      },
    });
    out.set("content-length", String(bytes.length));
    return new Response(body, { status: res.status, headers: out });
  }
  state.host = `127.0.0.1:${server.addr.port}`;
  state.stop = () => {
    letGo();
    return server.shutdown();
  };
  return state;
}

/** `body`, calling `done` once when it ended, failed or was cancelled. */
function untilDone(
  body: ReadableStream<Uint8Array>,
  done: () => void,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let once = false;
  const end = () => {
    if (!once) done();
    once = true;
  };
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        end();
        throw e;
      }
      if (r.done) {
        end();
        c.close();
      } else c.enqueue(r.value);
    },
    async cancel(reason) {
      end();
      await reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
