/**
 * Internal: PAX extended-header records (`"%d %s=%s\n"`, POSIX.1-2001 pax),
 * values kept as raw bytes so binary `SCHILY.xattr.*` values survive.
 *
 * @module
 */

import { decodeUtf8Exact, encodeUtf8 } from "./_block.ts";

/**
 * Parses the records of a PAX header body into `into` (later records win).
 * With `copy` false the values are views into `body`.
 * Returns an error message for a malformed body, or `null`.
 */
export function parsePaxRecords(
  body: Uint8Array,
  into: Map<string, Uint8Array>,
  copy = true,
): string | null {
  // A copy unless the caller uses the values before the buffer is reused.
  return scanPaxRecords(body, copy ? setCopy : setView, into);
}

function setCopy(m: Map<string, Uint8Array>, k: string, v: Uint8Array): void {
  m.set(k, v.slice());
}

function setView(m: Map<string, Uint8Array>, k: string, v: Uint8Array): void {
  m.set(k, v);
}

/**
 * The one PAX record parser: calls `onRecord(ctx, key, value)` with each
 * record's key and value (a view into `body`, valid during the call), in
 * order. Returns an error message for a malformed body (records before it
 * were reported), or `null`. Callers that need only a few keys (the
 * tar-split recorder) use it directly and build no map. The context
 * argument lets a hot caller pass one module-level function instead of a
 * closure per header.
 */
export function scanPaxRecords<C>(
  body: Uint8Array,
  onRecord: (ctx: C, key: string, value: Uint8Array) => void,
  ctx: C,
): string | null {
  let i = 0;
  while (i < body.length) {
    // Trailing NUL padding (some writers) ends the records.
    if (body[i] === 0) break;
    let len = 0;
    let j = i;
    while (j < body.length && body[j] >= 0x30 && body[j] <= 0x39) {
      len = len * 10 + (body[j] - 0x30);
      if (len > body.length) return "PAX record length runs past the header";
      j++;
    }
    if (j === i || body[j] !== 0x20) {
      return "malformed PAX record length";
    }
    const end = i + len;
    if (len < 5 || end > body.length || body[end - 1] !== 0x0a) {
      return "PAX record length does not match its content";
    }
    const keyStart = j + 1;
    let eq = keyStart;
    while (eq < end - 1 && body[eq] !== 0x3d) eq++;
    if (eq === keyStart || eq >= end - 1) {
      return "PAX record without a key=value pair";
    }
    const key = paxKey(body, keyStart, eq);
    if (key === null) {
      return "PAX record key is not valid UTF-8";
    }
    onRecord(ctx, key, body.subarray(eq + 1, end - 1));
    i = end;
  }
  return null;
}

/**
 * The key of a record, `body[start, end)`, as a string; null when it is not
 * UTF-8 or holds a NUL. GNU tar's per-file keys come back as constants: no
 * string is built for the three records every GNU tar entry carries.
 */
function paxKey(body: Uint8Array, start: number, end: number): string | null {
  if (
    end - start === 5 && body[start + 1] === 0x74 && // "?time"
    body[start + 2] === 0x69 && body[start + 3] === 0x6d &&
    body[start + 4] === 0x65
  ) {
    const c = body[start];
    if (c === 0x6d) return "mtime";
    if (c === 0x61) return "atime";
    if (c === 0x63) return "ctime";
  }
  const key = decodeUtf8Exact(body, start, end);
  return key === null || key.includes("\0") ? null : key;
}

/** Encodes one record; the length prefix counts itself. */
export function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const k = encodeUtf8(key);
  const base = 3 + k.length + value.length; // " " "=" "\n"
  let len = base + String(base).length;
  if (String(len).length !== String(base).length) {
    len = base + String(len).length;
  }
  const prefix = encodeUtf8(`${len} `);
  const out = new Uint8Array(len);
  out.set(prefix, 0);
  out.set(k, prefix.length);
  out[prefix.length + k.length] = 0x3d;
  out.set(value, prefix.length + k.length + 1);
  out[len - 1] = 0x0a;
  return out;
}

/** Decimal ASCII value of a record, or `null` when it is not a plain non-negative integer. */
export function paxInteger(v: Uint8Array): number | bigint | null {
  if (v.length === 0 || v.length > 40) return null;
  let n = 0n;
  for (const c of v) {
    if (c < 0x30 || c > 0x39) return null;
    n = n * 10n + BigInt(c - 0x30);
  }
  return n <= 9007199254740991n ? Number(n) : n;
}

/** Where {@link paxTime} puts a parsed time (one object, reused). */
export interface PaxTimeOut {
  sec: number;
  nsec: number;
}

/**
 * Parses a PAX time (`[-]seconds[.fraction]`) into whole seconds and
 * nanoseconds in `out`, normalised so that nanoseconds are in [0, 1e9) (Go
 * does the same with time.Unix). Digits past nanoseconds are truncated.
 * Returns false (leaving `out` as it was) for a malformed value. An out
 * parameter, not a tuple: GNU tar writes three times for every entry.
 */
export function paxTime(v: Uint8Array, out: PaxTimeOut): boolean {
  // Hand-rolled: a RegExp plus string building cost ~2 µs per entry.
  let i = 0;
  const neg = v[0] === 0x2d;
  if (neg) i++;
  let sec = 0;
  const start = i;
  for (; i < v.length && v[i] !== 0x2e; i++) {
    const d = v[i] - 0x30;
    if (d < 0 || d > 9) return false;
    sec = sec * 10 + d;
  }
  if (i === start || i - start > 16 || !Number.isSafeInteger(sec)) {
    return false;
  }
  let nsec = 0;
  if (i < v.length) {
    i++; // "."
    let digits = 0;
    for (; i < v.length; i++) {
      const d = v[i] - 0x30;
      if (d < 0 || d > 9) return false;
      if (digits < 9) {
        nsec = nsec * 10 + d;
        digits++;
      }
    }
    for (; digits < 9; digits++) nsec *= 10;
  }
  if (neg) {
    sec = -sec;
    if (nsec !== 0) {
      sec -= 1;
      nsec = 1e9 - nsec;
    }
  }
  out.sec = sec;
  out.nsec = nsec;
  return true;
}

/** Formats seconds + nanoseconds as a PAX time (GNU tar's 9-digit form). */
export function formatPaxTime(sec: number, nsec: number): string {
  if (nsec === 0) return String(sec);
  if (sec < 0) {
    // -1.5 s is stored as seconds -2, nsec 5e8.
    const whole = sec + 1;
    const frac = 1e9 - nsec;
    return `${whole === 0 ? "-0" : whole}.${String(frac).padStart(9, "0")}`;
  }
  return `${sec}.${String(nsec).padStart(9, "0")}`;
}
