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

/** Lines of a {@link board}, one per item (a layer), redrawn in place. */
export interface Board {
  /** Sets line `i` to `text`; redraws at most 10 times a second unless `force`. */
  set(i: number, text: string, force: boolean): void;
}

/**
 * One line per item (pull, push and load show one per layer, as docker
 * does), redrawn in place on a terminal; a no-op when `enabled` is false.
 *
 * @param enabled Draw at all (stderr is a terminal, not quiet, not --json).
 * @param write Sink for the text (the CLI passes a stderr writer).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { board } from "./_progress.ts";
 * let text = "";
 * const b = board(true, (t) => text += t);
 * b.set(0, "a: 1 MiB", true);
 * b.set(1, "b: done", true);
 * assert.ok(text.endsWith("\x1b[1A\r\x1b[Ka: 1 MiB\n\r\x1b[Kb: done\n"));
 * ```
 */
export function board(
  enabled: boolean,
  write: (text: string) => void,
): Board {
  const lines: string[] = [];
  let drawn = 0;
  let last = -Infinity; // the first line is drawn at once
  return {
    set(i, text, force) {
      if (!enabled) return;
      while (lines.length <= i) lines.push("");
      lines[i] = text;
      const now = performance.now();
      if (!force && now - last < 100) return;
      last = now;
      const up = drawn > 0 ? `\x1b[${drawn}A` : "";
      write(up + lines.map((l) => `\r\x1b[K${l}\n`).join(""));
      drawn = lines.length;
    },
  };
}
