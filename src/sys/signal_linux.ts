/**
 * Process-wide signal dispositions layerfs needs.
 *
 * @module
 */

import { libc } from "./libc_linux.ts";

const SIGXFSZ = 25;
const SIG_IGN = 1n;
const SIG_ERR = 0xffffffffffffffffn;

/**
 * Ignores SIGXFSZ in this process, so that writing past the file size limit
 * (`ulimit -f`, RLIMIT_FSIZE) fails with EFBIG, which layerfs reports as an
 * error naming the file, instead of the kernel killing the process without a
 * word (SIGXFSZ's default action). The `layerfs` CLI calls it at start;
 * programs using the library call it once before applying layers if they
 * may run under a file size limit. Child processes inherit the setting.
 *
 * Requires `--allow-ffi`.
 *
 * @throws {Error} when signal(2) fails (it does not for SIGXFSZ).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ignoreFileSizeSignal } from "./signal_linux.ts";
 * assert.doesNotThrow(() => ignoreFileSizeSignal());
 * ```
 */
export function ignoreFileSizeSignal(): void {
  const prev = BigInt(libc().signal(SIGXFSZ, SIG_IGN));
  if (prev === SIG_ERR) throw new Error("signal(SIGXFSZ, SIG_IGN) failed");
}
