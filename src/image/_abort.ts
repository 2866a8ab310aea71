/**
 * Internal: a stream that stops when a signal aborts.
 *
 * @module
 */

/**
 * `s`, erroring with `signal.reason` once `signal` aborts (and cancelling
 * `s`), so a reader stuck on a file or standard input stops too. Without a
 * signal, `s` itself.
 */
export function abortable<T>(
  s: ReadableStream<T>,
  signal: AbortSignal | undefined,
): ReadableStream<T> {
  if (!signal) return s;
  return s.pipeThrough(new TransformStream<T, T>(), { signal });
}
