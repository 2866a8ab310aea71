/**
 * Internal: `WWW-Authenticate` challenges (RFC 7235): `Bearer realm="...",
 * service="...", scope="..."` and `Basic realm="..."`, several per header.
 *
 * @module
 */

/** One challenge: the scheme (lower case) and its parameters (keys lower case). */
export interface Challenge {
  /** "bearer", "basic", ... */
  scheme: string;
  /** realm, service, scope, error, ... */
  params: Record<string, string>;
}

/**
 * Parses a `WWW-Authenticate` header value into its challenges.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseChallenges } from "./_challenge.ts";
 * const [c] = parseChallenges('Bearer realm="https://a/token",service="reg",scope="repository:x:pull"');
 * assert.deepEqual(c, { scheme: "bearer", params: { realm: "https://a/token", service: "reg", scope: "repository:x:pull" } });
 * ```
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipWs = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(header[i])) i++;
    return header.slice(start, i);
  };
  let current: Challenge | undefined;
  // Every step consumes at least one character or ends the loop.
  while (i < n) {
    skipWs();
    if (header[i] === ",") {
      i++;
      continue;
    }
    const start = i;
    const word = token();
    if (word === "") {
      i++;
      continue;
    }
    skipWs();
    if (header[i] === "=" && current) {
      i++;
      skipWs();
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i++];
        }
        i++;
      } else {
        const vs = i;
        while (i < n && header[i] !== "," && header[i] !== " ") i++;
        value = header.slice(vs, i);
      }
      current.params[word.toLowerCase()] = value;
    } else {
      i = start + word.length;
      current = { scheme: word.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}
