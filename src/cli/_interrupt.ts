/**
 * Internal: Ctrl-C for the long commands (`apply`, `pull`, `push`, `load`,
 * `save`).
 * SIGINT or SIGTERM becomes the AbortSignal the module functions take:
 * they stop, remove their temps and write no reference; the command then
 * fails with one {@link Interrupted} line ("pull of REF interrupted") and
 * exits 130 (SIGINT) or 143 (SIGTERM). A second signal ends the process at
 * once with the same code, for a user who will not wait for the cleanup.
 * Other commands keep the default: the signal kills them.
 *
 * @module
 */

import { Interrupted } from "../errors.ts";
import type { CommandContext } from "./_types.ts";

const SIGNALS = ["SIGINT", "SIGTERM"] as const;

/**
 * The real listener, for `processIo`: the first signal aborts, a second
 * one exits; removed again when `fn` is done.
 */
export async function listenForInterrupts<T>(
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const ac = new AbortController();
  const handlers = SIGNALS.map((sig) => {
    const h = () => {
      const e = new Interrupted("the command", sig);
      if (ac.signal.aborted) Deno.exit(e.exitCode);
      ac.abort(e);
    };
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  try {
    return await fn(ac.signal);
  } finally {
    for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  }
}

/**
 * Runs the work of a command under {@link CliIo.interrupts}: a failure
 * after a signal becomes `Interrupted` naming `what` ("pull of alpine").
 */
export async function interruptible<T>(
  ctx: CommandContext,
  what: string,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const run = ctx.io.interrupts ??
    (<U>(f: (s: AbortSignal) => Promise<U>) => f(new AbortController().signal));
  return await run(async (signal) => {
    try {
      return await fn(signal);
    } catch (e) {
      const why = signal.reason;
      if (signal.aborted && why instanceof Interrupted) {
        throw new Interrupted(what, why.signal, { cause: e });
      }
      throw e;
    }
  });
}
