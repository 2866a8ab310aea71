/**
 * Platforms (`os/arch[/variant]`) and the choice of one manifest from an
 * image index, as pure functions (containerd's `platforms` package: the
 * host's platform unless one is asked for; arm64's variant defaults to v8).
 * The one home of platform selection: OCI layouts on disk (`loadImage`)
 * and registry indexes (`pullImage`) both choose through it.
 *
 * @module
 */

import { NoMatchingPlatform, UsageError } from "../errors.ts";

/** A platform as image indexes describe them. */
export interface Platform {
  /** GOOS, e.g. "linux". */
  os: string;
  /** GOARCH, e.g. "amd64", "arm64". */
  architecture: string;
  /** CPU variant, e.g. "v8", "v7". */
  variant?: string;
}

/** A descriptor of an index's `manifests` array (the fields selection reads). */
export interface IndexEntry {
  /** Media type of the manifest. */
  mediaType?: string;
  /** Its digest. */
  digest: string;
  /** Its size in bytes. */
  size: number;
  /** Its platform, when tagged. */
  platform?: Platform & { "os.version"?: string; "os.features"?: string[] };
  /** Annotations. */
  annotations?: Record<string, string>;
}

/** The fields of an index the selection reads. */
export interface ImageIndex {
  /** The index's entries. */
  manifests: IndexEntry[];
}

const ARCH: Record<string, string> = {
  x86_64: "amd64",
  aarch64: "arm64",
  arm: "arm",
  riscv64gc: "riscv64",
};

/**
 * Parses `os/arch[/variant]`.
 *
 * @throws {UsageError} for other forms.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePlatform } from "./platform.ts";
 * assert.deepEqual(parsePlatform("linux/arm/v7"), { os: "linux", architecture: "arm", variant: "v7" });
 * ```
 */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !p)) {
    throw new UsageError(
      `Invalid platform ${
        JSON.stringify(s)
      }; use OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8`,
    );
  }
  const [os, architecture, variant] = parts.map((p) => p.toLowerCase());
  return variant ? { os, architecture, variant } : { os, architecture };
}

/**
 * The platform of this process (`Deno.build` by default).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostPlatform } from "./platform.ts";
 * assert.deepEqual(hostPlatform({ os: "linux", arch: "aarch64" }), { os: "linux", architecture: "arm64", variant: "v8" });
 * ```
 */
export function hostPlatform(
  build: { os: string; arch: string } = Deno.build,
): Platform {
  const architecture = ARCH[build.arch] ?? build.arch;
  return architecture === "arm64"
    ? { os: build.os, architecture, variant: "v8" }
    : { os: build.os, architecture };
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

function variantMatches(want: Platform, have: Platform): boolean {
  if (!want.variant) return true;
  if (have.variant === want.variant) return true;
  // An arm64 image without a variant is v8 (containerd normalises so).
  return want.architecture === "arm64" && want.variant === "v8" &&
    !have.variant;
}

/**
 * Chooses the manifest of `index` for `want` (default: the host's platform).
 * Entries without a platform, and attestation manifests (buildkit's
 * `vnd.docker.reference.type` annotation, or the platform
 * `unknown/unknown`), are never chosen. An exact
 * variant beats an entry without one.
 *
 * @param index The parsed index / manifest list.
 * @param want The platform, e.g. `parsePlatform("linux/arm64")`.
 * @param reference Names the image in the error.
 * @throws {NoMatchingPlatform} listing the platforms the index has.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { selectPlatform } from "./platform.ts";
 * const index = { manifests: [
 *   { digest: "sha256:a", size: 1, platform: { os: "linux", architecture: "amd64" } },
 *   { digest: "sha256:b", size: 1, platform: { os: "linux", architecture: "arm64", variant: "v8" } },
 * ] };
 * assert.equal(selectPlatform(index, { os: "linux", architecture: "arm64" }).digest, "sha256:b");
 * ```
 */
export function selectPlatform<E extends IndexEntry>(
  index: { manifests: E[] },
  want: Platform = hostPlatform(),
  reference = "the image",
): E {
  const candidates = (Array.isArray(index.manifests) ? index.manifests : [])
    .filter((m) =>
      m?.platform &&
      m.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest" &&
      !(m.platform.os === "unknown" && m.platform.architecture === "unknown")
    );
  const matching = candidates.filter((m) =>
    m.platform!.os === want.os &&
    m.platform!.architecture === want.architecture &&
    variantMatches(want, m.platform!)
  );
  const exact = matching.find((m) => m.platform!.variant === want.variant);
  const chosen = exact ?? matching[0];
  if (!chosen) {
    throw new NoMatchingPlatform(
      reference,
      formatPlatform(want),
      candidates.map((m) => formatPlatform(m.platform!)),
    );
  }
  return chosen;
}
