/**
 * Internal: pack's helper thread (`_file_prefetch.ts`): it gets the shared
 * buffer in one message and serves its slots with `peekSlot`.
 *
 * @module
 */

import { type HelperStart, serveSlots } from "../_slot_helper.ts";
import { peekSlot } from "./_file_prefetch.ts";

// The worker's global scope (typed without the deno.worker lib, which a
// published module may not pull in).
const scope = self as unknown as {
  onmessage: ((ev: MessageEvent<HelperStart>) => void) | null;
  close(): void;
};

scope.onmessage = (ev) => {
  try {
    serveSlots(ev.data, peekSlot);
  } finally {
    scope.close();
  }
};
