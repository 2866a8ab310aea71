/**
 * Internal: reads an open file ahead of the tar reader. Deno's `FsFile.read`
 * runs on a worker thread; with two 1 MiB buffers the next read is in flight
 * while the extractor makes its syscalls for the current chunk, instead of the
 * main thread idling on every read (measured: ~10% of apply time on a 750 MB
 * layer). A chunk stays valid until the reader asks for the one after it,
 * which is what the reader's source contract promises.
 *
 * @module
 */

const CHUNK = 1 << 20;

/** An async iterable over `file`'s bytes from its current position, one read ahead. */
export function prefetchFile(file: Deno.FsFile): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      const bufs = [new Uint8Array(CHUNK), new Uint8Array(CHUNK)];
      let done = false;
      const start = (i: number): Promise<[number, number | null]> => {
        const p = file.read(bufs[i]).then((n): [number, number | null] => [
          i,
          n,
        ]);
        // The reader may stop before the end (error, end-of-archive blocks):
        // a read still in flight must not become an unhandled rejection.
        p.catch(() => {});
        return p;
      };
      let pending = start(0);
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          if (done) return { done: true, value: undefined };
          const [i, n] = await pending;
          if (n === null) {
            done = true;
            return { done: true, value: undefined };
          }
          pending = start(1 - i);
          return { done: false, value: bufs[i].subarray(0, n) };
        },
        async return(): Promise<IteratorResult<Uint8Array>> {
          done = true;
          await pending.catch(() => {});
          return { done: true, value: undefined };
        },
      };
    },
  };
}
