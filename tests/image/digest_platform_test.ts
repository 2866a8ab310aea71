/**
 * The image module's pure parts shared with the registry: digests (sha256
 * and sha512, typed refusals) and platform selection from an index.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  InvalidImage,
  NoMatchingPlatform,
  UsageError,
} from "../../src/errors.ts";
import {
  digestHex,
  hostPlatform,
  parseDigest,
  parsePlatform,
  selectPlatform,
} from "../../src/image/mod.ts";

const D = "sha256:" + "ab".repeat(32);

Deno.test("digests: sha256 and sha512 only, lower-case hex of the right length", () => {
  assert.equal(parseDigest(D), D);
  assert.equal(
    parseDigest("sha512:" + "0".repeat(128)),
    "sha512:" + "0".repeat(128),
  );
  for (
    const d of [
      "sha256:" + "AB".repeat(32),
      "sha256:" + "a".repeat(63),
      "sha1:" + "a".repeat(40),
      "nohex",
    ]
  ) {
    assert.throws(() => parseDigest(d));
  }
});

Deno.test("platform selection from an index", () => {
  const entry = (
    digest: string,
    platform?: object,
    annotations?: Record<string, string>,
  ) => ({
    digest,
    size: 1,
    platform: platform as never,
    annotations,
  });
  const index = {
    manifests: [
      entry("sha256:att", { os: "unknown", architecture: "unknown" }, {
        "vnd.docker.reference.type": "attestation-manifest",
      }),
      entry("sha256:amd64", { os: "linux", architecture: "amd64" }),
      entry("sha256:armv6", {
        os: "linux",
        architecture: "arm",
        variant: "v6",
      }),
      entry("sha256:armv7", {
        os: "linux",
        architecture: "arm",
        variant: "v7",
      }),
      entry("sha256:arm64", { os: "linux", architecture: "arm64" }),
      entry("sha256:win", { os: "windows", architecture: "amd64" }),
      entry("sha256:none"),
    ],
  };
  const pick = (p: string) => selectPlatform(index, parsePlatform(p)).digest;
  assert.equal(pick("linux/amd64"), "sha256:amd64");
  assert.equal(pick("linux/arm/v7"), "sha256:armv7");
  assert.equal(pick("linux/arm/v6"), "sha256:armv6");
  assert.equal(pick("linux/arm64/v8"), "sha256:arm64");
  assert.equal(pick("linux/arm64"), "sha256:arm64");
  assert.equal(pick("windows/amd64"), "sha256:win");
  assert.equal(
    selectPlatform(index, hostPlatform({ os: "linux", arch: "x86_64" })).digest,
    "sha256:amd64",
  );
  assert.throws(() => pick("linux/s390x"), (e: Error) => {
    assert.ok(e instanceof NoMatchingPlatform);
    assert.match(e.message, /linux\/s390x/);
    assert.match(e.message, /linux\/amd64, linux\/arm\/v6/);
    assert.doesNotMatch(e.message, /unknown/);
    return true;
  });
  assert.throws(() => parsePlatform("linux"), UsageError);
  assert.throws(() => parsePlatform("linux/amd64/v1/x"), UsageError);
  assert.throws(
    () =>
      selectPlatform({ manifests: "x" as never }, parsePlatform("linux/amd64")),
    NoMatchingPlatform,
  );
});

Deno.test("digestHex: sha256 only, as InvalidImage", () => {
  assert.equal(digestHex(D, "x"), "ab".repeat(32));
  assert.throws(
    () => digestHex("sha512:" + "0".repeat(128), "x"),
    InvalidImage,
  );
  assert.throws(() => digestHex(42, "x"), InvalidImage);
});
