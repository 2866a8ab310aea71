import assert from "node:assert/strict";
import { decodeString, decodeUtf8Exact } from "../src/archive/tar/_block.ts";
import { decodeName } from "../src/sys/fs_walk_linux.ts";

const enc = new TextEncoder();

/** Strings around the short-ASCII cutoff (64 bytes) and the 100-byte name field. */
const CASES = [
  "",
  "a",
  "root",
  "x".repeat(63),
  "y".repeat(64),
  "z".repeat(65),
  "n".repeat(100),
  "é",
  "a".repeat(62) + "é",
  "a".repeat(70) + "日本",
  "dir/\u{1F600}/file",
];

Deno.test("decodeString: a NUL-terminated field decodes to the exact string at every length", () => {
  for (const s of CASES) {
    const bytes = enc.encode(s);
    // In a field with a NUL after it, at an offset, with bytes after the NUL.
    const field = new Uint8Array(bytes.length + 20).fill(0x41);
    field.set(bytes, 7);
    field[7 + bytes.length] = 0;
    assert.equal(decodeString(field, 7, bytes.length + 5), s);
    // A field filled to its end has no NUL.
    assert.equal(decodeString(field, 7, bytes.length), s);
  }
});

Deno.test("decodeString and decodeUtf8Exact refuse bytes that are not UTF-8, short and long", () => {
  for (const n of [0, 10, 63, 64, 80]) {
    const b = new Uint8Array(n + 1).fill(0x61);
    b[n] = 0xff;
    assert.equal(decodeString(b, 0, b.length), null);
    assert.equal(decodeUtf8Exact(b), null);
  }
});

Deno.test("decodeUtf8Exact: a range decodes exactly (NULs included) around the cutoff", () => {
  for (const s of [...CASES, "a\0b"]) {
    const bytes = enc.encode(s);
    const b = new Uint8Array(bytes.length + 6);
    b.set(bytes, 3);
    assert.equal(decodeUtf8Exact(b, 3, 3 + bytes.length), s);
  }
});

Deno.test("decodeName: directory entry names decode exactly around the cutoff, and non-UTF-8 is null", () => {
  for (const s of CASES) {
    const bytes = enc.encode(s);
    const b = new Uint8Array(bytes.length + 4).fill(0x2f);
    b.set(bytes, 2);
    assert.equal(decodeName(b, 2, 2 + bytes.length), s);
  }
  for (const n of [0, 10, 64, 80]) {
    const b = new Uint8Array(n + 1).fill(0x61);
    b[n] = 0xfe;
    assert.equal(decodeName(b, 0, b.length), null);
  }
});
