/**
 * The CLI's registry commands: `pull` and `push`. Their table entries and
 * runners live here; `_spec.ts` and `_commands.ts` take them with one line
 * each, and the store opener comes in as an argument (no import cycle).
 *
 * Progress: on a terminal, one line per layer redrawn in place, as
 * `docker pull` does ("Downloading 1.2 MiB / 3.4 MiB", "Pull complete",
 * "Already exists"); nothing on a pipe. `--json` prints one document at
 * the end, `--quiet` the image id (pull) or manifest digest (push) only.
 *
 * @module
 */

import { UsageError } from "../errors.ts";
import type { LoadProgress } from "../image/mod.ts";
import type { RegistryClient } from "../registry/client.ts";
import { pullImage, pushImage } from "../registry/lazy.ts";
import type { PushProgress } from "../registry/push.ts";
import { parseReference } from "../image/reference.ts";
import type { Store } from "../store/store.ts";
import { board, formatBytes } from "./_progress.ts";
import { interruptible } from "./_interrupt.ts";
import { PARALLEL_OPTION, parallelOf } from "./_parallel.ts";
import type { CommandContext, CommandResult, CommandSpec } from "./_types.ts";
import { loadModule } from "../_load_module.ts";
import { freshLine } from "./_fresh.ts";

const clientImpl = () =>
  loadModule<typeof import("../registry/client.ts")>(
    new URL("../registry/client.ts", import.meta.url),
  );

const insecure = {
  type: "boolean" as const,
  help:
    "--insecure        allow plain HTTP to this registry (loopback registries always may)",
};

const timeout = {
  type: "string" as const,
  help:
    "--timeout S       give up on a connection after S seconds with nothing moving (a stalled download resumes first); 0 waits forever (default 30)",
};

/** `--timeout`'s seconds as ms, or undefined when it was not given. */
function idleTimeoutOf(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const s = typeof value === "string" && /^\d+(\.\d+)?$/.test(value)
    ? Number(value)
    : NaN;
  if (!Number.isFinite(s) || s > 86400) {
    throw new UsageError(
      `--timeout takes seconds (0 to wait forever, at most 86400), not ${
        JSON.stringify(value)
      }`,
    );
  }
  return Math.round(s * 1000);
}

/** The registry commands' table entries. */
export const REGISTRY_COMMANDS: CommandSpec[] = [
  {
    name: "pull",
    usage: "REF [--platform P] [--parallel N] [--timeout S] [--insecure]",
    summary:
      "pull an image from a registry into the store; prints its name and id",
    description:
      "Layers stream from the registry straight into the store (verified: blob digest and\n" +
      "size, DiffID); a blob downloads while its layer unpacks, so --parallel 1 fetches one\n" +
      "blob at a time, bottom first (podman's --max-parallel-downloads 1). Layers already\n" +
      "present are reused without a request.\n" +
      "Credentials come from the auth file `layerfs login` writes.",
    options: {
      platform: {
        type: "string",
        help:
          "--platform P      os/arch[/variant] to pick from multi-platform images (default: the host's)",
      },
      parallel: PARALLEL_OPTION,
      timeout,
      insecure,
    },
    args: [1, 1],
  },
  {
    name: "push",
    usage:
      "REF [--image LOCAL] [--compress gzip|zstd] [--timeout S] [--insecure]",
    summary:
      "push an image of the store to a registry; prints the manifest digest",
    description:
      "Blobs the registry has (or can mount from a repository the image came from) are\n" +
      "neither uploaded nor read; other layers are exported afresh and compressed. The\n" +
      "manifest goes last.",
    options: {
      image: {
        type: "string",
        help:
          "--image LOCAL     the image of the store to push (default: REF itself)",
      },
      compress: {
        type: "string",
        help:
          "--compress C      gzip (default) | zstd: for layers that are exported afresh",
      },
      timeout,
      insecure,
    },
    args: [1, 1],
  },
];

type WithStore = <T>(
  ctx: CommandContext,
  create: boolean,
  fn: (store: Store) => Promise<T>,
) => Promise<T>;

// The client's code (HTTP, TLS, auth) loads when a command needs it: the
// CLI's help and its store commands take this module's table entries only.
async function client(
  ctx: CommandContext,
  ref: string,
): Promise<RegistryClient> {
  const host = parseReference(ref).host;
  const idleTimeoutMs = idleTimeoutOf(ctx.values.timeout);
  const { RegistryClient } = await clientImpl();
  return new RegistryClient({
    env: ctx.io.env,
    uid: ctx.io.uid,
    insecure: ctx.values.insecure === true ? [host] : [],
    idleTimeoutMs,
  });
}

/**
 * The runners of the registry commands.
 *
 * @param withStore Opens the store for a command (from `_commands.ts`).
 */
export function registryCommands(
  withStore: WithStore,
): Record<string, (ctx: CommandContext) => Promise<CommandResult>> {
  const terminal = (ctx: CommandContext) =>
    ctx.io.isTerminal.stderr && !ctx.global.quiet && !ctx.global.json;
  return {
    pull: (ctx) =>
      withStore(ctx, true, async (store) => {
        const [ref] = ctx.args;
        const b = board(terminal(ctx), ctx.io.stderr);
        const onProgress = (p: LoadProgress) => {
          const id = p.id.slice(0, 12);
          const text = p.state === "reused"
            ? "Already exists"
            : p.state === "done"
            ? "Pull complete"
            : `Downloading and extracting ${formatBytes(p.bytes)}${
              p.total !== undefined ? ` / ${formatBytes(p.total)}` : ""
            }`;
          b.set(p.layer - 1, `${id}: ${text}`, p.state !== "apply");
        };
        const c = await client(ctx, ref);
        try {
          const img = await interruptible(ctx, `pull of ${ref}`, (signal) =>
            pullImage(store, ref, {
              client: c,
              platform: typeof ctx.values.platform === "string"
                ? ctx.values.platform
                : undefined,
              parallel: parallelOf(ctx.values.parallel),
              onProgress,
              signal,
            }));
          return {
            json: {
              ref: img.ref,
              digest: img.digest,
              id: img.id,
              topLayer: img.topLayer,
              layers: img.layers,
            },
            text: ctx.global.quiet
              ? img.id
              : `Pulled ${img.ref} ${img.id} (digest ${img.digest})`,
            data: true,
          };
        } finally {
          c.close();
        }
      }),

    push: (ctx) =>
      withStore(ctx, false, async (store) => {
        const [ref] = ctx.args;
        const compress = ctx.values.compress ?? "gzip";
        if (compress !== "gzip" && compress !== "zstd") {
          throw new UsageError(
            `Unknown --compress ${JSON.stringify(compress)}; use gzip or zstd`,
          );
        }
        const b = board(terminal(ctx), ctx.io.stderr);
        const words: Record<PushProgress["state"], string> = {
          export: "Exported, uploading",
          exists: "Layer already exists",
          mounted: "Mounted from another repository",
          uploaded: "Pushed",
        };
        const onProgress = (p: PushProgress) => {
          const name = p.layer === 0
            ? "config"
            : `layer ${p.layer}/${p.layers}`;
          b.set(
            p.layer === 0 ? p.layers : p.layer - 1,
            `${p.digest?.slice(7, 19) ?? ""} ${name}: ${words[p.state]}`,
            true,
          );
        };
        const c = await client(ctx, ref);
        try {
          const r = await interruptible(ctx, `push of ${ref}`, (signal) =>
            pushImage(store, ref, {
              client: c,
              image: typeof ctx.values.image === "string"
                ? ctx.values.image
                : undefined,
              compress,
              parallel: parallelOf(ctx.values.parallel),
              onProgress,
              signal,
            }));
          return {
            json: {
              ref: r.ref,
              digest: r.digest,
              mediaType: r.mediaType,
              id: r.id,
              storeId: r.storeId,
              layers: r.layers.map((l) => ({
                digest: l.digest,
                size: l.size,
                diffId: l.diffId,
                how: l.how,
              })),
              fresh: r.fresh,
            },
            text: ctx.global.quiet ? r.digest : [
              ...r.fresh.map(freshLine),
              `Pushed ${r.ref} ${r.digest} (image ${r.id}${
                r.id === r.storeId ? "" : `, was ${r.storeId}`
              })`,
            ].join("\n"),
            data: true,
          };
        } finally {
          c.close();
        }
      }),
  };
}
