/**
 * Pure parts of the registry client: references (docker's normalisation,
 * round trips, typed refusals), `WWW-Authenticate` parsing, plain-HTTP rules.
 *
 * @module
 */

import assert from "node:assert/strict";
import { InvalidReference } from "../../src/errors.ts";
import {
  isLoopback,
  parseReference,
  plainHttpAllowed,
  referenceOf,
} from "../../src/registry/mod.ts";
import { parseChallenges } from "../../src/registry/_challenge.ts";

const D = "sha256:" + "ab".repeat(32);

Deno.test("references normalise as docker does and round-trip", () => {
  const cases: [
    string,
    string,
    string,
    string,
    string | undefined,
    string | undefined,
  ][] = [
    [
      "alpine",
      "docker.io/library/alpine:latest",
      "docker.io",
      "library/alpine",
      "latest",
      undefined,
    ],
    [
      "user/app",
      "docker.io/user/app:latest",
      "docker.io",
      "user/app",
      "latest",
      undefined,
    ],
    [
      "user/app:1.2",
      "docker.io/user/app:1.2",
      "docker.io",
      "user/app",
      "1.2",
      undefined,
    ],
    [
      "docker.io/alpine",
      "docker.io/library/alpine:latest",
      "docker.io",
      "library/alpine",
      "latest",
      undefined,
    ],
    [
      "index.docker.io/library/alpine:3",
      "docker.io/library/alpine:3",
      "docker.io",
      "library/alpine",
      "3",
      undefined,
    ],
    [
      "localhost/app",
      "localhost/app:latest",
      "localhost",
      "app",
      "latest",
      undefined,
    ],
    [
      "localhost:5000/a/b/c:v1",
      "localhost:5000/a/b/c:v1",
      "localhost:5000",
      "a/b/c",
      "v1",
      undefined,
    ],
    [
      "127.0.0.1:5000/app",
      "127.0.0.1:5000/app:latest",
      "127.0.0.1:5000",
      "app",
      "latest",
      undefined,
    ],
    ["ghcr.io/o/r@" + D, "ghcr.io/o/r@" + D, "ghcr.io", "o/r", undefined, D],
    ["ghcr.io/o/r:t@" + D, "ghcr.io/o/r:t@" + D, "ghcr.io", "o/r", "t", D],
    [
      "[::1]:5000/app:v",
      "[::1]:5000/app:v",
      "[::1]:5000",
      "app",
      "v",
      undefined,
    ],
    [
      "Registry/app",
      "Registry/app:latest",
      "Registry",
      "app",
      "latest",
      undefined,
    ],
    [
      "a.b/x__y.z-w---v/q",
      "a.b/x__y.z-w---v/q:latest",
      "a.b",
      "x__y.z-w---v/q",
      "latest",
      undefined,
    ],
  ];
  for (const [input, canonical, host, repository, tag, digest] of cases) {
    const r = parseReference(input);
    assert.equal(r.toString(), canonical, input);
    assert.deepEqual([r.host, r.repository, r.tag, r.digest], [
      host,
      repository,
      tag,
      digest,
    ], input);
    assert.equal(
      parseReference(r.toString()).toString(),
      canonical,
      `round trip of ${input}`,
    );
    assert.equal(r.manifestRef, digest ?? tag);
  }
  assert.equal(
    referenceOf("localhost:5000", "app", D).toString(),
    `localhost:5000/app@${D}`,
  );
});

Deno.test("malformed references are InvalidReference naming the problem", () => {
  const bad: [string, RegExp][] = [
    ["", /empty/],
    ["Alpine", /lowercase/],
    ["docker.io/Library/alpine", /lowercase/],
    ["app:", /tag/],
    ["app:-x", /tag/],
    ["app:" + "t".repeat(129), /tag/],
    ["app@sha256:1234", /digest/],
    ["app@md5:" + "a".repeat(32), /digest/],
    ["host.io/", /repository name is missing|path component/],
    ["host.io//app", /path component/],
    ["app_/x", /path component/],
    ["a b", /white space/],
    ["-bad.host/app", /host/],
    ["h.io/" + "a".repeat(260), /longer than 255/],
  ];
  for (const [input, why] of bad) {
    assert.throws(() => parseReference(input), (e: Error) => {
      assert.ok(e instanceof InvalidReference, `${input}: ${e}`);
      assert.match(e.message, why, input);
      assert.match(e.message, /\[HOST\[:PORT\]\/\]REPO/);
      return true;
    });
  }
});

Deno.test("WWW-Authenticate challenges", () => {
  assert.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [
    { scheme: "basic", params: { realm: "Registry Realm" } },
  ]);
  assert.deepEqual(
    parseChallenges(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push",error="insufficient_scope"',
    ),
    [{
      scheme: "bearer",
      params: {
        realm: "https://auth.docker.io/token",
        service: "registry.docker.io",
        scope: "repository:samalba/my-app:pull,push",
        error: "insufficient_scope",
      },
    }],
  );
  assert.deepEqual(
    parseChallenges('Basic realm="a", Bearer realm="b\\"c", service=s'),
    [
      { scheme: "basic", params: { realm: "a" } },
      { scheme: "bearer", params: { realm: 'b"c', service: "s" } },
    ],
  );
  // Garbage ends without looping.
  assert.deepEqual(parseChallenges('=,="'), []);
});

Deno.test("plain HTTP only for loopback and listed registries", () => {
  for (
    const h of [
      "localhost",
      "localhost:5000",
      "127.0.0.1",
      "127.1.2.3:80",
      "[::1]:5000",
      "x.localhost",
    ]
  ) {
    assert.equal(isLoopback(h), true, h);
  }
  for (
    const h of [
      "registry.example.com",
      "128.0.0.1",
      "10.0.0.1:5000",
      "localhost.example.com",
    ]
  ) {
    assert.equal(isLoopback(h), false, h);
  }
  assert.equal(plainHttpAllowed("reg.lan:5000", ["reg.lan:5000"]), true);
  assert.equal(plainHttpAllowed("reg.lan:5000", ["other.lan"]), false);
});
