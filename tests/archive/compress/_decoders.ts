/**
 * Test helper: the gzip decoders a test runs with, ISA-L (when
 * `libisal.so.2` is installed) and node:zlib. In CI
 * (LAYERFS_REQUIRE_PRIVILEGED=1, which `.ci/run` sets and where it installs
 * `libisal2`) a missing ISA-L fails instead of being skipped.
 *
 * @module
 */

import {
  disableIsalForTests,
  isalGunzipAvailable,
} from "../../../src/archive/compress/_gunzip_isal.ts";
import { privilegedRequired } from "../../_privileged.ts";

/** One decoder: `use()` selects it until the returned value is disposed. */
export interface GzipDecoder {
  name: "ISA-L" | "node:zlib";
  use(): Disposable;
}

/** Whether ISA-L decodes here (on a machine without it: false, with a note). */
export function isalHere(): boolean {
  disableIsalForTests(false);
  if (isalGunzipAvailable()) return true;
  if (privilegedRequired) {
    throw new Error(
      "ISA-L (libisal.so.2) is missing and LAYERFS_REQUIRE_PRIVILEGED=1 forbids skipping its tests: apt-get install libisal2",
    );
  }
  console.warn(
    "skipping the ISA-L gzip tests: libisal.so.2 is not installed (apt-get install libisal2)",
  );
  return false;
}

/** The decoders to run a gzip test with. */
export function gzipDecoders(): GzipDecoder[] {
  const zlib: GzipDecoder = {
    name: "node:zlib",
    use() {
      disableIsalForTests(true);
      return { [Symbol.dispose]: () => disableIsalForTests(false) };
    },
  };
  if (!isalHere()) return [zlib];
  return [{
    name: "ISA-L",
    use() {
      disableIsalForTests(false);
      return { [Symbol.dispose]: () => {} };
    },
  }, zlib];
}
