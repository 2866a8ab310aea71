/**
 * Progress on stderr for long work (apply, diff): bytes, entries and rate,
 * redrawn in place at most 5 times a second. Only used when stderr is a
 * terminal; otherwise nothing extra is printed (logs stay clean).
 *
 * @module
 */

/** A progress line that counts bytes and entries. */
export interface Progress {
  /** Adds bytes moved. */
  bytes(n: number): void;
  /** Sets the number of entries processed so far. */
  entries(n: number): void;
  /** Draws the final line and ends it with a newline. */
  done(): void;
}

const NONE: Progress = { bytes() {}, entries() {}, done() {} };

/** Formats a byte count as "12.3 MiB". */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${u === 0 ? n : n.toFixed(1)} ${units[u]}`;
}

/**
 * A progress line writing to `write`, or a no-op when `enabled` is false.
 *
 * @param label What is going on, e.g. "apply base".
 * @param enabled Draw at all (the CLI passes `Deno.stderr.isTerminal() && !quiet`).
 * @param write Sink for the text (the CLI passes a stderr writer).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeProgress } from "./_progress.ts";
 * let text = "";
 * const p = makeProgress("apply", true, (t) => text += t);
 * p.bytes(512);
 * p.done();
 * assert.match(text, /apply: 512 B, .*\/s\n$/);
 * const off = makeProgress("apply", false, () => assert.fail("not drawn"));
 * off.bytes(512);
 * off.done();
 * ```
 */
export function makeProgress(
  label: string,
  enabled: boolean,
  write: (text: string) => void,
): Progress {
  if (!enabled) return NONE;
  const start = performance.now();
  let bytes = 0;
  let entries = -1;
  let last = 0;
  const draw = (final: boolean) => {
    const now = performance.now();
    if (!final && now - last < 200) return;
    last = now;
    const secs = Math.max((now - start) / 1000, 0.001);
    const parts = [formatBytes(bytes)];
    if (entries >= 0) parts.push(`${entries} entries`);
    parts.push(`${formatBytes(bytes / secs)}/s`);
    write(`\r\x1b[K${label}: ${parts.join(", ")}${final ? "\n" : ""}`);
  };
  return {
    bytes(n) {
      bytes += n;
      draw(false);
    },
    entries(n) {
      entries = n;
      draw(false);
    },
    done() {
      draw(true);
    },
  };
}
