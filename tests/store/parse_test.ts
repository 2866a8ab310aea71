/**
 * The store's pure metadata parsers, which the privileged helper shares: what
 * they accept, and that their errors name the file but never echo it.
 */
import assert from "node:assert/strict";
import { parseConfig } from "../../src/store/config.ts";
import { parseMeta, parseParents } from "../../src/store/meta.ts";
import { StoreError } from "../../src/errors.ts";

const SECRET = "root:$6$secret";

Deno.test("parseParents: ids nearest first; a bad line is named by number, not echoed", () => {
  assert.deepEqual(parseParents("child\nbase\n", "app"), ["child", "base"]);
  assert.deepEqual(parseParents("", "base"), []);
  for (const bad of [`child\n${SECRET}\n`, "child\n../etc\n"]) {
    assert.throws(
      () => parseParents(bad, "app"),
      (e: Error) => {
        assert.ok(e instanceof StoreError);
        assert.match(
          e.message,
          /layers\/app names an invalid parent id on line 2/,
        );
        assert.doesNotMatch(e.message, /secret|\.\.\/etc/);
        return true;
      },
    );
  }
});

Deno.test("parseMeta: flags and label; anything but a JSON object is refused without echo", () => {
  assert.deepEqual(parseMeta('{"readWrite":true,"mountLabel":"x"}', "c"), {
    readWrite: true,
    mountLabel: "x",
  });
  assert.deepEqual(parseMeta('{"readWrite":"yes","mountLabel":7}', "c"), {
    readWrite: false,
  });
  for (const bad of [SECRET, "null", "[1]", '"s"']) {
    assert.throws(
      () => parseMeta(bad, "c"),
      (e: Error) =>
        e instanceof StoreError &&
        /meta\/c is not a valid JSON object/.test(e.message) &&
        !e.message.includes("secret"),
    );
  }
});

Deno.test("parseConfig: version and backend checked, values never echoed", () => {
  assert.equal(
    parseConfig('{"version":1,"backend":"overlay","userXattr":true}').userXattr,
    true,
  );
  for (
    const [bad, why] of [
      [SECRET, /not valid JSON/],
      ["null", /not a JSON object/],
      [
        `{"version":1,"backend":"${SECRET}"}`,
        /unknown backend \(known: overlay, aufs, vfs\)/,
      ],
      ['{"version":99,"backend":"vfs"}', /another format version/],
    ] as const
  ) {
    assert.throws(
      () => parseConfig(bad),
      (e: Error) =>
        e instanceof StoreError && why.test(e.message) &&
        !e.message.includes("secret"),
    );
  }
});
