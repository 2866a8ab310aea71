/**
 * Internal: what an archive or layout holds, as plans: per image its names,
 * its manifest (when there is one), its config and its layers, each with
 * the path of its bytes and what to verify them against. Two formats:
 *
 * - docker-archive (`docker save`): `manifest.json` lists
 *   `{Config, RepoTags, Layers}`; classic archives name `<hex>.json` and
 *   `<id>/layer.tar`, Docker 25+ ones `blobs/sha256/<hex>` (an OCI layout
 *   with a manifest.json beside it). `manifest.json` wins when both exist:
 *   its RepoTags are complete names.
 * - OCI image layout: `oci-layout`, `index.json`, `blobs/`. Indexes nest;
 *   a multi-platform index yields the manifest of the requested platform
 *   (default: the host's). Names come from `io.containerd.image.name` or
 *   `org.opencontainers.image.ref.name` when that is a full `name:tag`.
 *
 * Small JSON files (index, manifest, config) are read whole, capped, and
 * checked against their digest whenever one is known.
 *
 * @module
 */

import { ForeignLayer, InvalidImage, InvalidReference } from "../errors.ts";
import { parseReference } from "./reference.ts";
import {
  CONFIG_TYPES,
  FOREIGN_LAYER as FOREIGN,
  IMAGE_MANIFEST_TYPES,
  INDEX_TYPES,
  LAYER_TYPES,
} from "./media_types.ts";
import { type IndexEntry, type Platform, selectPlatform } from "./platform.ts";
import { digestHex } from "./digest.ts";
import { sha256Of } from "../_sha256.ts";
import { type ImageSource, safePath } from "./_source.ts";
import { withTag } from "./image_store.ts";

/** The cap on a manifest, index or config (moby allows 8 MiB configs too). */
export const MAX_JSON = 8 << 20;

/** Bytes to load and what to check them against. */
export interface BlobRef {
  /** Path in the source (safe). */
  path: string;
  /** Expected sha256 hex, when the archive names one. */
  digest?: string;
  /** Expected size, when the archive names one. */
  size?: number;
  /** Media type, when the archive names one. */
  mediaType?: string;
}

/** One image to load. */
export interface ImagePlan {
  /** For messages: the names or the manifest digest. */
  subject: string;
  /** `name:tag` references the archive gives it. */
  refs: string[];
  /**
   * Every name the archive gives it as written, bare OCI tags ("v2") too:
   * what a load by `ref` selects on.
   */
  names: string[];
  /** The manifest: digest hex and bytes (already verified). */
  manifest?: { digest: string; bytes: Uint8Array };
  /** The config. */
  config: BlobRef;
  /** Layers, bottom first. */
  layers: BlobRef[];
}

const REF_RE = /^[A-Za-z0-9][A-Za-z0-9._\-/:@]{0,254}$/;

/**
 * Reads a whole small file, checking its size and digest when known.
 *
 * @throws {InvalidImage} missing, too large, or not the named bytes.
 */
export async function readSmall(
  src: ImageSource,
  blob: BlobRef,
  subject: string,
): Promise<Uint8Array> {
  const f = src.open(blob.path);
  if (!f) {
    throw new InvalidImage(subject, `${blob.path} is missing from the archive`);
  }
  if (f.size > MAX_JSON) {
    throw new InvalidImage(
      subject,
      `${blob.path} is ${f.size} bytes, more than the ${MAX_JSON}-byte cap for JSON documents`,
    );
  }
  if (blob.size !== undefined && f.size !== blob.size) {
    throw new InvalidImage(
      subject,
      `${blob.path} is ${f.size} bytes, its descriptor says ${blob.size}`,
    );
  }
  const bytes = await new Response(f.stream()).bytes();
  if (blob.digest !== undefined) {
    const got = await sha256Of(bytes);
    if (got !== blob.digest) {
      throw new InvalidImage(
        subject,
        `${blob.path} has digest sha256:${got}, expected sha256:${blob.digest}`,
      );
    }
  }
  return bytes;
}

/** Parses JSON or says which file is broken. */
export function parseJson(
  bytes: Uint8Array,
  what: string,
  subject: string,
): Record<string, unknown> {
  try {
    const v = JSON.parse(
      new TextDecoder("utf-8", { fatal: true }).decode(bytes),
    );
    if (v && typeof v === "object" && !Array.isArray(v)) return v;
  } catch { /* below */ }
  throw new InvalidImage(subject, `${what} is not a JSON object`);
}

function parseJsonArray(bytes: Uint8Array, what: string, subject: string) {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes));
    if (Array.isArray(v)) return v as unknown[];
  } catch { /* below */ }
  throw new InvalidImage(subject, `${what} is not a JSON array`);
}

/** A descriptor's size: a non-negative safe integer. */
function descSize(v: unknown, subject: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new InvalidImage(
      subject,
      `the size ${JSON.stringify(v)} is not a byte count${
        typeof v === "number" && Math.abs(v) > Number.MAX_SAFE_INTEGER
          ? " (as written it is over 2^53, past exact numbers: shown rounded)"
          : ""
      }`,
    );
  }
  return v;
}

/** Checks a `name:tag` taken from an archive. */
function checkRef(ref: unknown, subject: string): string {
  const bad = (why: string, fix?: string) =>
    new InvalidImage(
      subject,
      `the reference ${
        JSON.stringify(ref)?.slice(0, 100)
      } is not an image name${why}`,
      fix,
    );
  if (typeof ref !== "string" || !REF_RE.test(ref) || ref.includes("..")) {
    throw bad("");
  }
  // The grammar pull and push use too (docker load refuses these as well):
  // a name no other command could take back is not stored.
  try {
    parseReference(ref);
  } catch (e) {
    if (!(e instanceof InvalidReference)) throw e;
    throw bad(
      ` (${e.why})`,
      "save or export the image again under a valid name",
    );
  }
  return withTag(ref);
}

/** A checked descriptor: its layout path, digest hex and size. */
export type Descriptor = BlobRef & { digest: string; size: number };

/** `blobs/sha256/<hex>` of a descriptor, with its digest and size. */
function blobOf(
  desc: Record<string, unknown>,
  subject: string,
): Descriptor {
  const digest = digestHex(desc.digest, subject);
  return {
    path: `blobs/sha256/${digest}`,
    digest,
    size: descSize(desc.size, subject),
    mediaType: typeof desc.mediaType === "string" ? desc.mediaType : undefined,
  };
}

/** The digest hex a content-addressed path names (`blobs/sha256/<hex>`, `<hex>.json`). */
function addressed(path: string): string | undefined {
  return /^blobs\/sha256\/([0-9a-f]{64})$/.exec(path)?.[1] ??
    /^([0-9a-f]{64})\.json$/.exec(path)?.[1];
}

/**
 * The images of a source.
 *
 * @param platform The platform to pick from multi-platform indexes.
 * @throws {InvalidImage} {ForeignLayer} {NoMatchingPlatform}
 */
export async function planImages(
  src: ImageSource,
  platform: Platform,
): Promise<ImagePlan[]> {
  if (src.has("manifest.json")) return await dockerPlans(src);
  if (src.has("index.json")) return await ociPlans(src, platform);
  throw new InvalidImage(
    src.label,
    "it has neither manifest.json (docker-archive) nor index.json (OCI layout)",
    "pass the output of docker save, podman save, skopeo copy or an OCI layout",
  );
}

async function dockerPlans(src: ImageSource): Promise<ImagePlan[]> {
  const subject = `${src.label} (manifest.json)`;
  const list = parseJsonArray(
    await readSmall(src, { path: "manifest.json" }, subject),
    "manifest.json",
    subject,
  );
  if (list.length === 0) {
    throw new InvalidImage(subject, "manifest.json lists no image");
  }
  return list.map((e, i) => {
    if (!e || typeof e !== "object") {
      throw new InvalidImage(subject, `entry ${i} is not an object`);
    }
    const m = e as Record<string, unknown>;
    const tags = Array.isArray(m.RepoTags) ? m.RepoTags : [];
    const refs = tags.map((t) => checkRef(t, subject));
    const s = refs[0] ?? `${src.label} image ${i + 1}`;
    const configPath = safePath(m.Config, s);
    if (!Array.isArray(m.Layers)) {
      throw new InvalidImage(s, "its manifest.json entry has no Layers list");
    }
    const sources = (m.LayerSources ?? {}) as Record<string, unknown>;
    for (const d of Object.values(sources)) {
      const t = (d as Record<string, unknown>)?.mediaType;
      if (typeof t === "string" && FOREIGN.test(t)) {
        throw new ForeignLayer(s, t);
      }
    }
    return {
      subject: s,
      refs,
      names: refs,
      config: { path: configPath, digest: addressed(configPath) },
      layers: m.Layers.map((l: unknown) => {
        const path = safePath(l, s);
        return { path, digest: addressed(path) };
      }),
    };
  });
}

type Leaf = Record<string, unknown> & IndexEntry;

async function ociPlans(
  src: ImageSource,
  want: Platform,
): Promise<ImagePlan[]> {
  const layout = parseJson(
    await readSmall(src, { path: "oci-layout" }, src.label),
    "oci-layout",
    src.label,
  );
  if (layout.imageLayoutVersion !== "1.0.0") {
    throw new InvalidImage(
      src.label,
      `oci-layout says version ${
        JSON.stringify(layout.imageLayoutVersion)
      }, not 1.0.0`,
    );
  }
  const index = parseJson(
    await readSmall(src, { path: "index.json" }, src.label),
    "index.json",
    src.label,
  );
  const top = descriptors(index, `${src.label} (index.json)`);
  // Top-level descriptors with a platform are alternatives of one image per
  // name (Docker 25+ and some tools list platform manifests right there).
  const groups = new Map<string, Leaf[]>();
  /** Each group's first descriptor: its annotations name the group. */
  const firstOf = new Map<string, Record<string, unknown>>();
  const plans: ImagePlan[] = [];
  for (const d of top) {
    // Grouped by the name as written: two images tagged "v1" and "v2"
    // (bare tags, which name no image in the store) stay two images.
    const key = writtenName(d) ?? "";
    const leaves = INDEX_TYPES.includes(String(d.mediaType))
      ? await flatten(src, d, 0)
      : [d as Leaf];
    const g = groups.get(key) ?? [];
    if (!d.platform && !INDEX_TYPES.includes(String(d.mediaType))) {
      const name = refName(d, src.label);
      plans.push({
        ...await manifestPlan(src, d, name ? [name] : []),
        names: key ? [key] : [],
      });
      continue;
    }
    g.push(...leaves);
    groups.set(key, g);
    firstOf.set(key, firstOf.get(key) ?? d);
  }
  for (const [key, leaves] of groups) {
    const name = refName(firstOf.get(key)!, src.label);
    // One untagged manifest is the image, whatever the platform asked.
    const hit = leaves.length === 1 && !leaves[0].platform
      ? leaves[0]
      : selectPlatform({ manifests: leaves }, want, key || src.label);
    plans.push({
      ...await manifestPlan(src, hit, name ? [name] : []),
      names: key ? [key] : [],
    });
  }
  if (plans.length === 0) {
    throw new InvalidImage(src.label, "index.json lists no image");
  }
  return plans;
}

function descriptors(
  index: Record<string, unknown>,
  subject: string,
): Record<string, unknown>[] {
  if (!Array.isArray(index.manifests)) {
    throw new InvalidImage(subject, "it has no manifests list");
  }
  return index.manifests.map((d, i) => {
    if (!d || typeof d !== "object") {
      throw new InvalidImage(subject, `manifests[${i}] is not a descriptor`);
    }
    return d as Record<string, unknown>;
  });
}

/** The descriptor's name as the archive writes it (a full reference or a bare tag). */
function writtenName(d: Record<string, unknown>): string | undefined {
  const a = (d.annotations ?? {}) as Record<string, unknown>;
  for (
    const k of ["io.containerd.image.name", "org.opencontainers.image.ref.name"]
  ) {
    if (typeof a[k] === "string" && a[k] !== "") return a[k] as string;
  }
  return undefined;
}

function refName(d: Record<string, unknown>, subject: string) {
  const a = (d.annotations ?? {}) as Record<string, unknown>;
  const full = a["io.containerd.image.name"];
  if (full !== undefined) return checkRef(full, subject);
  const ref = a["org.opencontainers.image.ref.name"];
  // A bare tag ("latest") names no image; only full names are kept.
  if (typeof ref === "string" && /[:/]/.test(ref)) {
    return checkRef(ref, subject);
  }
  return undefined;
}

async function flatten(
  src: ImageSource,
  d: Record<string, unknown>,
  depth: number,
): Promise<Leaf[]> {
  const subject = `index sha256:${digestHex(d.digest, src.label)}`;
  if (depth > 8) {
    throw new InvalidImage(subject, "indexes nest more than 8 deep");
  }
  const idx = parseJson(
    await readSmall(src, blobOf(d, subject), subject),
    "the index",
    subject,
  );
  const out: Leaf[] = [];
  for (const c of descriptors(idx, subject)) {
    if (INDEX_TYPES.includes(String(c.mediaType))) {
      out.push(...await flatten(src, c, depth + 1));
    } else out.push(c as Leaf);
  }
  return out;
}

async function manifestPlan(
  src: ImageSource,
  d: Record<string, unknown>,
  refs: string[],
): Promise<ImagePlan> {
  const blob = blobOf(d, src.label);
  const subject = refs[0] ?? `manifest sha256:${blob.digest}`;
  if (
    blob.mediaType !== undefined &&
    !IMAGE_MANIFEST_TYPES.includes(blob.mediaType)
  ) {
    throw new InvalidImage(
      subject,
      `the manifest's media type ${blob.mediaType} is not an image manifest`,
      "layerfs loads OCI and Docker v2 image manifests",
    );
  }
  const bytes = await readSmall(src, blob, subject);
  const { config, layers } = parseManifest(bytes, subject);
  return {
    subject,
    refs,
    names: refs,
    manifest: { digest: blob.digest, bytes },
    config,
    layers,
  };
}

/**
 * The config and layers of an image manifest (OCI or Docker v2, schema 2),
 * each checked: digests, sizes, media types; foreign layers refused.
 *
 * @param bytes The manifest's bytes (already verified against its digest).
 * @param subject Names the image in errors.
 * @throws {InvalidImage} {ForeignLayer}
 */
export function parseManifest(
  bytes: Uint8Array,
  subject: string,
): { config: Descriptor; layers: Descriptor[]; mediaType?: string } {
  const m = parseJson(bytes, "the manifest", subject);
  if (
    m.mediaType !== undefined &&
    !IMAGE_MANIFEST_TYPES.includes(String(m.mediaType))
  ) {
    throw new InvalidImage(
      subject,
      `its media type ${m.mediaType} is not an image manifest`,
    );
  }
  const cfg = m.config as Record<string, unknown> | undefined;
  if (!cfg || typeof cfg !== "object") {
    throw new InvalidImage(subject, "the manifest has no config descriptor");
  }
  const config = blobOf(cfg, `${subject} config`);
  if (
    config.mediaType !== undefined && !CONFIG_TYPES.includes(config.mediaType)
  ) {
    throw new InvalidImage(
      subject,
      `the config's media type ${config.mediaType} is not an image config`,
    );
  }
  if (!Array.isArray(m.layers)) {
    throw new InvalidImage(subject, "the manifest has no layers list");
  }
  const layers = m.layers.map((l: unknown, i: number) => {
    const ls = `${subject} layer ${i + 1}`;
    if (!l || typeof l !== "object") {
      throw new InvalidImage(ls, "it is not a descriptor");
    }
    const b = blobOf(l as Record<string, unknown>, ls);
    const t = b.mediaType ?? "";
    if (FOREIGN.test(t) || (l as Record<string, unknown>).urls !== undefined) {
      throw new ForeignLayer(ls, t || "a layer with urls");
    }
    if (!(t in LAYER_TYPES)) {
      throw new InvalidImage(
        ls,
        `its media type ${JSON.stringify(t)} is not a layer tar`,
        "layerfs loads OCI and Docker v2 layers (tar, tar+gzip, tar+zstd)",
      );
    }
    return b;
  });
  return {
    config,
    layers,
    mediaType: typeof m.mediaType === "string" ? m.mediaType : undefined,
  };
}
