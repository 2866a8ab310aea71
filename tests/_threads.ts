/**
 * Test helper: this process's worker threads. Deno names a Web Worker's
 * thread `worker-<n>`, so /proc/self/task shows whether code that started
 * workers ended them; `terminate()` does not wait for the thread to exit,
 * so {@link workersGone} polls for a bounded while.
 *
 * @module
 */

/** `tid:name` of each worker thread of this process, sorted. */
export function workerThreads(): string[] {
  return [...Deno.readDirSync("/proc/self/task")].flatMap((t) => {
    try {
      const comm = Deno.readTextFileSync(`/proc/self/task/${t.name}/comm`);
      return comm.startsWith("worker-") ? [`${t.name}:${comm.trim()}`] : [];
    } catch {
      return []; // a thread that ended meanwhile
    }
  }).sort();
}

/**
 * Worker threads that were not among `before` (an earlier test's may
 * still be exiting): once there are none, or after 5 s the ones left.
 */
export async function workersGone(before: string[]): Promise<string[]> {
  const extra = () => workerThreads().filter((t) => !before.includes(t));
  for (let i = 0; i < 200 && extra().length > 0; i++) {
    await new Promise((r) => setTimeout(r, 25));
  }
  return extra();
}

/**
 * Counts the Web Workers this process starts until `restore()` (wraps the
 * global `Worker`, which code resolves when it constructs one).
 */
export function countWorkers(): { count: () => number; restore: () => void } {
  const Original = globalThis.Worker;
  let n = 0;
  globalThis.Worker = class extends Original {
    constructor(...args: ConstructorParameters<typeof Worker>) {
      super(...args);
      n++;
    }
  };
  return {
    count: () => n,
    restore: () => void (globalThis.Worker = Original),
  };
}
