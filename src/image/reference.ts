/**
 * Image references as docker and podman read them:
 * `[HOST[:PORT]/]REPO[:TAG][@ALGO:HEX]`.
 *
 * - A first path component is a host when it contains `.` or `:`, is
 *   `localhost`, or has upper-case letters (docker's `splitDockerDomain`);
 *   otherwise the host is `docker.io`.
 * - On `docker.io` a one-component repository is under `library/`
 *   (`alpine` is `docker.io/library/alpine`); `index.docker.io` is `docker.io`.
 * - Without a tag or digest the tag is `latest`; with only a digest there is
 *   no tag. With both, the digest is what is fetched.
 *
 * @module
 */

import { InvalidReference } from "../errors.ts";
import { parseDigest } from "./digest.ts";

/** docker's default registry, as references name it. */
export const DOCKER_HUB = "docker.io";

// distribution/reference's grammar (regexp.go), anchored per part.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN =
  /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
/** distribution/reference's NameTotalLengthMax. */
const NAME_MAX = 255;

/** A parsed, normalised image reference. */
export interface Reference {
  /** Registry host as named, with port: `docker.io`, `localhost:5000`. */
  readonly host: string;
  /** Repository path: `library/alpine`. */
  readonly repository: string;
  /** Tag, when given (or the default `latest` when neither tag nor digest was). */
  readonly tag?: string;
  /** Digest, `sha256:<64 hex>`, when given. */
  readonly digest?: string;
  /** What the manifest endpoint takes: the digest if any, else the tag. */
  readonly manifestRef: string;
  /** `host/repository`. */
  readonly name: string;
  /** The canonical form, `host/repository[:tag][@digest]`; parses back to the same reference. */
  toString(): string;
}

class Ref implements Reference {
  constructor(
    readonly host: string,
    readonly repository: string,
    readonly tag: string | undefined,
    readonly digest: string | undefined,
  ) {}
  get manifestRef(): string {
    return this.digest ?? this.tag ?? "latest";
  }
  get name(): string {
    return `${this.host}/${this.repository}`;
  }
  toString(): string {
    return this.name + (this.tag ? `:${this.tag}` : "") +
      (this.digest ? `@${this.digest}` : "");
  }
}

/**
 * A reference for `host/repository` with a tag or digest (no parsing of
 * `ref`: it must be a tag or a digest).
 *
 * @throws {InvalidReference} when the parts are not valid.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { referenceOf } from "./reference.ts";
 * assert.equal(referenceOf("localhost:5000", "app", "v1").toString(), "localhost:5000/app:v1");
 * ```
 */
export function referenceOf(
  host: string,
  repository: string,
  ref = "latest",
): Reference {
  return parseReference(
    `${host}/${repository}${ref.includes(":") ? "@" : ":"}${ref}`,
  );
}

/**
 * Parses and normalises an image reference.
 *
 * @param s `alpine`, `user/app:1`, `localhost:5000/app@sha256:...`, ...
 * @returns The reference; `toString()` gives its canonical form.
 * @throws {InvalidReference} naming what is wrong (upper case, bad tag, bad digest, too long, ...).
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseReference } from "./reference.ts";
 * assert.equal(parseReference("alpine").toString(), "docker.io/library/alpine:latest");
 * assert.equal(parseReference("user/app").toString(), "docker.io/user/app:latest");
 * const r = parseReference("localhost:5000/team/app:v1");
 * assert.deepEqual([r.host, r.repository, r.tag], ["localhost:5000", "team/app", "v1"]);
 * ```
 */
export function parseReference(s: string): Reference {
  const fail = (why: string): never => {
    throw new InvalidReference(s, why);
  };
  if (s === "") fail("it is empty");
  if (/\s/.test(s)) fail("it contains white space");
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      digest = parseDigest(d);
    } catch (e) {
      fail(
        `the digest ${JSON.stringify(d)} is not valid (${
          (e as Error).message
        })`,
      );
    }
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      fail(
        `the tag ${
          JSON.stringify(tag)
        } is not valid (1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)`,
      );
    }
  }
  let host = DOCKER_HUB;
  let repository = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (
      /[.:]/.test(first) || first === "localhost" ||
      first.toLowerCase() !== first
    ) {
      host = first;
      repository = rest.slice(slash + 1);
    }
  }
  if (!DOMAIN.test(host)) fail(`the host ${JSON.stringify(host)} is not valid`);
  if (host === "index.docker.io") host = DOCKER_HUB;
  if (host === DOCKER_HUB && !repository.includes("/")) {
    repository = `library/${repository}`;
  }
  if (repository === "") fail("the repository name is missing");
  for (const c of repository.split("/")) {
    if (!COMPONENT.test(c)) {
      fail(
        c.toLowerCase() !== c
          ? "the repository must be lowercase"
          : `the path component ${
            JSON.stringify(c)
          } is not valid (a-z 0-9 separated by . _ __ or -)`,
      );
    }
  }
  if (host.length + 1 + repository.length > NAME_MAX) {
    fail(`the name is longer than ${NAME_MAX} characters`);
  }
  if (tag === undefined && digest === undefined) tag = "latest";
  return new Ref(host, repository, tag, digest);
}

/**
 * `host` without a port and brackets: `localhost:5000` -> `localhost`, `[::1]:5000` -> `::1`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostname } from "./reference.ts";
 * assert.equal(hostname("[::1]:5000"), "::1");
 * ```
 */
export function hostname(host: string): string {
  if (host.startsWith("[")) return host.slice(1, host.indexOf("]"));
  const i = host.lastIndexOf(":");
  return i >= 0 ? host.slice(0, i) : host;
}

/**
 * The full names (`host/repository:tag`) that an image name `s` may stand
 * for in an image store, best first: the one home of how a short name
 * finds an image. A name with a registry host (`localhost:5000/app`,
 * `docker.io/alpine`) means just its canonical form. A name without one
 * means docker's reading first (`alpine` is `docker.io/library/alpine:latest`),
 * then podman's for local images (`localhost/alpine:latest`). Undefined for
 * a digest reference and for what is not a reference.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nameCandidates } from "./reference.ts";
 * assert.deepEqual(nameCandidates("alpine"), ["docker.io/library/alpine:latest", "localhost/alpine:latest"]);
 * assert.deepEqual(nameCandidates("docker.io/alpine:3"), ["docker.io/library/alpine:3"]);
 * assert.deepEqual(nameCandidates("localhost/myimg:1"), ["localhost/myimg:1"]);
 * assert.equal(nameCandidates("Not A Name"), undefined);
 * ```
 */
export function nameCandidates(s: string): string[] | undefined {
  if (s.includes("@")) return undefined;
  let r: Reference;
  try {
    r = parseReference(s);
  } catch {
    return undefined;
  }
  const full = `${r.name}:${r.tag}`;
  const first = s.slice(0, Math.max(0, s.indexOf("/")));
  const explicit = r.host !== DOCKER_HUB || first === DOCKER_HUB ||
    first === "index.docker.io";
  if (explicit) return [full];
  try {
    const local = parseReference(`localhost/${s}`);
    return [full, `${local.name}:${local.tag}`];
  } catch {
    return [full]; // too long with the prefix
  }
}
