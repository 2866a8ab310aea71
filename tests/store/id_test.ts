/** Layer ids: refused before any path or mount option is built. */
import assert from "node:assert/strict";
import { InvalidLayerId, validateLayerId } from "../../mod.ts";

Deno.test("ids: valid ones pass", () => {
  for (
    const id of [
      "a",
      "A9",
      "sha256.abc-def_1",
      "x".repeat(128),
      "0-removing-not",
    ]
  ) {
    assert.equal(validateLayerId(id), id);
  }
});

Deno.test("ids: invalid ones are InvalidLayerId", () => {
  for (
    const id of [
      "",
      ".",
      "..",
      "a/b",
      "/abs",
      "a,b",
      "a:b",
      "a\nb",
      "a\0b",
      "-lead",
      "_lead",
      ".hidden",
      "x".repeat(129),
      "a b",
      "layer-removing",
      "é",
    ]
  ) {
    assert.throws(
      () => validateLayerId(id),
      InvalidLayerId,
      JSON.stringify(id),
    );
  }
});
