/**
 * Internal: the helper thread of `_file_prefetch.ts`. It gets the shared
 * buffer in one message, then takes the requested slots in ring order and
 * does each file with `peekFileAt`, until the writer closes it.
 *
 * @module
 */

import {
  CTRL,
  HELPER,
  layoutOf,
  peekSlot,
  SLOT,
  SLOTS,
  slotViews,
} from "./_file_prefetch.ts";

// The worker's global scope (typed without the deno.worker lib, which a
// published module may not pull in).
const scope = self as unknown as {
  onmessage: ((ev: MessageEvent<SharedArrayBuffer>) => void) | null;
  close(): void;
};

scope.onmessage = (ev) => {
  const l = layoutOf(ev.data);
  const { ctrl, ring, state } = l;
  try {
    if (
      Atomics.compareExchange(
        ctrl,
        CTRL.STATE,
        HELPER.STARTING,
        HELPER.RUNNING,
      ) !== HELPER.STARTING
    ) return; // closed before it started
    const views = slotViews(l);
    let tail = 0;
    for (;;) {
      // Read before the checks: a wake after them makes the wait return.
      const wake = Atomics.load(ctrl, CTRL.WAKE);
      if (Atomics.load(ctrl, CTRL.STATE) !== HELPER.RUNNING) break;
      const head = Atomics.load(ctrl, CTRL.HEAD);
      if (tail === head) {
        Atomics.wait(ctrl, CTRL.WAKE, wake);
        continue;
      }
      // More requests than slots were made since (stolen slots reused):
      // the oldest are overwritten; the writer does those itself.
      if (head - tail > SLOTS) tail = head - SLOTS;
      const i = Atomics.load(ring, tail % SLOTS);
      tail++;
      if (
        Atomics.compareExchange(state, i, SLOT.REQUESTED, SLOT.CLAIMED) !==
          SLOT.REQUESTED
      ) continue; // the writer got there first
      peekSlot(l, views, i);
    }
  } finally {
    Atomics.store(ctrl, CTRL.EXITED, 1);
    Atomics.notify(ctrl, CTRL.EXITED);
    scope.close();
  }
};
