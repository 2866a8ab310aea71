/**
 * Test helpers: build images by hand (layer tars with our tar writer, then
 * OCI layouts and both docker-archive forms around them), describe trees
 * for comparison, and run the CLI in a child process.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { tarHeader, TarWriter } from "../../mod.ts";

/** sha256 hex. */
export function sha(b: Uint8Array | string): string {
  return createHash("sha256").update(b).digest("hex");
}

const enc = new TextEncoder();

/** One entry of a layer tar built by a test. */
export interface TestEntry {
  name: string;
  type?: "file" | "dir" | "symlink";
  content?: string;
  mode?: number;
  linkname?: string;
}

/** A layer tar (uncompressed), with GNU-tar-like end padding to 10240 bytes. */
export async function layerTar(entries: TestEntry[]): Promise<Uint8Array> {
  const w = new TarWriter();
  const out = new Response(w.readable).bytes();
  for (const e of entries) {
    const body = enc.encode(e.content ?? "");
    const type = e.type ?? "file";
    await w.add(
      tarHeader({
        name: e.name,
        type,
        size: type === "file" ? body.length : 0,
        mode: e.mode ?? (type === "dir" ? 0o755 : 0o644),
        linkname: e.linkname ?? "",
      }),
      type === "file" ? body : undefined,
    );
  }
  await w.close();
  const tar = await out;
  // Record padding after the two zero blocks, as GNU tar writes it: the
  // DiffID covers it, so the loader must read it too.
  const padded = new Uint8Array(Math.ceil((tar.length + 1) / 10240) * 10240);
  padded.set(tar);
  return padded;
}

/** The base layer: files, a dir to make opaque later, a file to delete, a symlink. */
export function baseLayer(): Promise<Uint8Array> {
  return layerTar([
    { name: "etc", type: "dir" },
    { name: "etc/hello", content: "hello\n" },
    { name: "etc/secret", content: "s", mode: 0o600 },
    { name: "opq", type: "dir" },
    { name: "opq/old1", content: "1" },
    { name: "opq/old2", content: "2" },
    { name: "gone.txt", content: "bye" },
    { name: "bin", type: "dir", mode: 0o750 },
    { name: "bin/tool", content: "#!/bin/sh\necho tool\n", mode: 0o755 },
    { name: "link", type: "symlink", linkname: "etc/hello" },
  ]);
}

/** The second layer: a whiteout, an opaque dir, a change and an addition. */
export function topLayer(): Promise<Uint8Array> {
  return layerTar([
    { name: ".wh.gone.txt" },
    { name: "opq", type: "dir" },
    { name: "opq/.wh..wh..opq" },
    { name: "opq/new", content: "new" },
    { name: "etc", type: "dir" },
    { name: "etc/hello", content: "hello again\n" },
    { name: "etc/added", content: "added\n" },
  ]);
}

/** What the union of base and top must look like (path -> "type mode content"). */
export const EXPECTED_TOP: Record<string, string> = {
  "/bin": "dir 750 ",
  "/bin/tool": "file 755 #!/bin/sh\necho tool\n",
  "/etc": "dir 755 ",
  "/etc/added": "file 644 added\n",
  "/etc/hello": "file 644 hello again\n",
  "/etc/secret": "file 600 s",
  "/link": "symlink 777 etc/hello",
  "/opq": "dir 755 ",
  "/opq/new": "file 644 new",
};

/** A tree as path -> "type mode content" (small test trees). */
export async function simpleTree(
  root: string,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    const names = [];
    for await (const e of Deno.readDir(root + rel)) names.push(e.name);
    for (const n of names.sort()) {
      const p = `${rel}/${n}`;
      const st = await Deno.lstat(root + p);
      const mode = ((st.mode ?? 0) & 0o7777).toString(8);
      if (st.isSymlink) {
        out[p] = `symlink ${mode} ${await Deno.readLink(root + p)}`;
      } else if (st.isDirectory) {
        out[p] = `dir ${mode} `;
        await walk(p);
      } else if (st.isFile) {
        out[p] = `file ${mode} ${await Deno.readTextFile(root + p)}`;
      } else out[p] = `other ${mode} `;
    }
  };
  await walk("");
  return out;
}

/**
 * A tree as path -> "type mode size sha256" (for big trees and interop:
 * types, modes, sizes and content hashes; symlink targets hashed).
 */
export async function hashedTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string) => {
    const names = [];
    for await (const e of Deno.readDir(root + rel)) names.push(e.name);
    for (const n of names.sort()) {
      const p = `${rel}/${n}`;
      const st = await Deno.lstat(root + p);
      const mode = ((st.mode ?? 0) & 0o7777).toString(8);
      if (st.isSymlink) {
        out.set(p, `symlink ${mode} - ${sha(await Deno.readLink(root + p))}`);
      } else if (st.isDirectory) {
        out.set(p, `dir ${mode}`);
        await walk(p);
      } else if (st.isFile) {
        out.set(
          p,
          `file ${mode} ${st.size} ${sha(await Deno.readFile(root + p))}`,
        );
      } else out.set(p, `other ${mode} ${st.rdev ?? 0}`);
    }
  };
  await walk("");
  return out;
}

/** Layer compression in test images. */
export type Compression = "none" | "gzip" | "zstd";

/** A layer as it goes into an image. */
export interface BuiltLayer {
  /** Uncompressed tar. */
  tar: Uint8Array;
  /** Blob bytes (compressed per `compression`). */
  blob: Uint8Array;
  /** OCI media type. */
  mediaType: string;
  /** `sha256:` of `tar`. */
  diffId: string;
}

/** Compresses a layer tar and names its media type. */
export function buildLayer(
  tar: Uint8Array,
  c: Compression = "none",
): BuiltLayer {
  const blob = c === "gzip"
    ? new Uint8Array(gzipSync(tar))
    : c === "zstd"
    ? new Uint8Array(zstdCompressSync(tar))
    : tar;
  const suffix = c === "none" ? "" : `+${c}`;
  return {
    tar,
    blob,
    mediaType: `application/vnd.oci.image.layer.v1.tar${suffix}`,
    diffId: `sha256:${sha(tar)}`,
  };
}

/** A built image: its blobs by digest hex, plus the ids a test checks. */
export interface BuiltImage {
  layers: BuiltLayer[];
  config: Uint8Array;
  configHex: string;
  manifest: Uint8Array;
  manifestHex: string;
  /** Hand-computed chain ids, bottom first. */
  chains: string[];
  platform: { os: string; architecture: string; variant?: string };
}

/** Chain ids computed here, the docker/containerd way, independently of src/. */
export function handChainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    out.push(
      out.length === 0 ? d.slice(7) : sha(`sha256:${out.at(-1)} ${d}`),
    );
  }
  return out;
}

/** Config and manifest for `layers`. */
export function buildImage(
  layers: BuiltLayer[],
  arch = "amd64",
  extra: Record<string, unknown> = {},
): BuiltImage {
  const config = enc.encode(JSON.stringify({
    architecture: arch,
    os: "linux",
    created: "2026-12-01T00:00:00Z",
    config: { Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    ...extra,
  }));
  const manifest = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: `sha256:${sha(config)}`,
      size: config.length,
    },
    layers: layers.map((l) => ({
      mediaType: l.mediaType,
      digest: `sha256:${sha(l.blob)}`,
      size: l.blob.length,
    })),
  }));
  return {
    layers,
    config,
    configHex: sha(config),
    manifest,
    manifestHex: sha(manifest),
    chains: handChainIds(layers.map((l) => l.diffId)),
    platform: { os: "linux", architecture: arch },
  };
}

async function putBlob(dir: string, b: Uint8Array): Promise<string> {
  const hex = sha(b);
  await Deno.writeFile(`${dir}/blobs/sha256/${hex}`, b);
  return hex;
}

/** Options of {@link writeOciLayout}. */
export interface LayoutImage {
  image: BuiltImage;
  /** org.opencontainers.image.ref.name. */
  ref?: string;
}

/** Writes an OCI layout with one index.json entry per image. */
export async function writeOciLayout(
  dir: string,
  images: LayoutImage[],
): Promise<void> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/oci-layout`,
    '{"imageLayoutVersion":"1.0.0"}',
  );
  const manifests = [];
  for (const { image, ref } of images) {
    for (const l of image.layers) await putBlob(dir, l.blob);
    await putBlob(dir, image.config);
    await putBlob(dir, image.manifest);
    manifests.push({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: `sha256:${image.manifestHex}`,
      size: image.manifest.length,
      ...(ref
        ? { annotations: { "org.opencontainers.image.ref.name": ref } }
        : {}),
    });
  }
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({ schemaVersion: 2, manifests }),
  );
}

/**
 * Writes a multi-platform OCI layout: index.json -> (nested) index -> one
 * manifest per platform, plus an attestation manifest that must be skipped.
 */
export async function writeMultiPlatformLayout(
  dir: string,
  images: BuiltImage[],
  ref: string,
): Promise<void> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/oci-layout`,
    '{"imageLayoutVersion":"1.0.0"}',
  );
  const entries = [];
  for (const image of images) {
    for (const l of image.layers) await putBlob(dir, l.blob);
    await putBlob(dir, image.config);
    await putBlob(dir, image.manifest);
    entries.push({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: `sha256:${image.manifestHex}`,
      size: image.manifest.length,
      platform: image.platform,
    });
  }
  entries.push({
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${images[0].manifestHex}`,
    size: images[0].manifest.length,
    platform: { os: "unknown", architecture: "unknown" },
    annotations: { "vnd.docker.reference.type": "attestation-manifest" },
  });
  const inner = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: entries,
  }));
  const innerHex = await putBlob(dir, inner);
  const outer = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [{
      mediaType: "application/vnd.oci.image.index.v1+json",
      digest: `sha256:${innerHex}`,
      size: inner.length,
    }],
  }));
  const outerHex = await putBlob(dir, outer);
  await Deno.writeTextFile(
    `${dir}/index.json`,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: `sha256:${outerHex}`,
        size: outer.length,
        annotations: { "org.opencontainers.image.ref.name": ref },
      }],
    }),
  );
}

/** Tars a directory with GNU tar (members without "./"). */
export async function tarDir(dir: string, out: string): Promise<void> {
  const names = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  await run("tar", ["-C", dir, "-cf", out, ...names.sort()]);
}

/**
 * A classic `docker save` archive: `<hex>.json` configs, `<id>/layer.tar`
 * (with `json` and `VERSION`), `manifest.json`, `repositories`. A layer
 * shared by two images is a symlink to the first copy, as moby writes it.
 */
export async function writeDockerClassic(
  out: string,
  images: { image: BuiltImage; tags: string[] }[],
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const manifest = [];
    const repositories: Record<string, Record<string, string>> = {};
    const written = new Map<string, string>();
    for (const { image, tags } of images) {
      await Deno.writeFile(`${dir}/${image.configHex}.json`, image.config);
      const layers = [];
      for (const [i, l] of image.layers.entries()) {
        const id = sha(`${image.chains[i]} v1`);
        const first = written.get(l.diffId);
        if (!first) {
          await Deno.mkdir(`${dir}/${id}`, { recursive: true });
          await Deno.writeFile(`${dir}/${id}/layer.tar`, l.tar);
          await Deno.writeTextFile(`${dir}/${id}/VERSION`, "1.0");
          await Deno.writeTextFile(`${dir}/${id}/json`, JSON.stringify({ id }));
          written.set(l.diffId, id);
          layers.push(`${id}/layer.tar`);
        } else {
          await Deno.mkdir(`${dir}/${id}`, { recursive: true }).catch(() => {});
          await Deno.symlink(`../${first}/layer.tar`, `${dir}/${id}/layer.tar`)
            .catch(() => {});
          layers.push(`${id}/layer.tar`);
        }
      }
      manifest.push({
        Config: `${image.configHex}.json`,
        RepoTags: tags,
        Layers: layers,
      });
      for (const t of tags) {
        const [name, tag] = [
          t.slice(0, t.lastIndexOf(":")),
          t.slice(t.lastIndexOf(":") + 1),
        ];
        (repositories[name] ??= {})[tag] = sha(`${image.chains.at(-1)} v1`);
      }
    }
    await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest));
    await Deno.writeTextFile(
      `${dir}/repositories`,
      JSON.stringify(repositories),
    );
    await tarDir(dir, out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A Docker 25+ `docker save` archive: an OCI layout plus manifest.json naming `blobs/sha256/...`. */
export async function writeDocker25(
  out: string,
  images: { image: BuiltImage; tags: string[] }[],
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await writeOciLayout(
      dir,
      images.map(({ image, tags }) => ({ image, ref: tags[0] })),
    );
    const manifest = images.map(({ image, tags }) => ({
      Config: `blobs/sha256/${image.configHex}`,
      RepoTags: tags,
      Layers: image.layers.map((l) => `blobs/sha256/${sha(l.blob)}`),
    }));
    await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest));
    await tarDir(dir, out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * skopeo and podman read the user's auth files (`$XDG_RUNTIME_DIR` or
 * `/run/containers/<uid>/auth.json`); as a non-root user on a machine where
 * root ran podman, `/run/containers` is root's 0700 dir and they fail with
 * EACCES. Tests use the credentials they pass on the command line: point the
 * auth file at a path that does not exist (read as "no credentials").
 */
const NO_AUTH_FILE = `${
  Deno.env.get("TMPDIR") ?? "/tmp"
}/layerfs-tests-${crypto.randomUUID()}/auth.json`;

/** Runs a program; throws with its exit code and stderr when it fails. Returns stdout. */
export async function run(
  cmd: string,
  args: string[],
  opts: { stdin?: Uint8Array; env?: Record<string, string> } = {},
): Promise<string> {
  const env = cmd === "skopeo"
    ? { REGISTRY_AUTH_FILE: NO_AUTH_FILE, ...opts.env }
    : opts.env;
  const p = new Deno.Command(cmd, {
    args,
    stdin: opts.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    env,
  }).spawn();
  if (opts.stdin) {
    const w = p.stdin.getWriter();
    await w.write(opts.stdin);
    await w.close();
  }
  const r = await p.output();
  const out = new TextDecoder().decode(r.stdout);
  if (!r.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${r.code}): ${
        new TextDecoder().decode(r.stderr)
      }`,
    );
  }
  return out;
}
