/**
 * The CLI's image commands: `load`, `images`, `rmi`, `prune`, `save`. Their specs
 * (`_image_spec.ts`) are listed in `_spec.ts`'s table and their runners in
 * `_commands.ts`'s, each with one line; the helpers they share with the other commands come in as
 * arguments (no import cycle).
 *
 * @module
 */

import { LayerfsError, UsageError } from "../errors.ts";
import type { ImageInput, LoadProgress } from "../image/mod.ts";
import {
  findImage,
  listImages,
  listRepository,
  loadImage,
  pruneImages,
  removeImage,
  saveImage,
  tagImage,
} from "../image/lazy.ts";
import type { Store } from "../store/store.ts";
import type { CommandContext, CommandResult } from "./_types.ts";
import { type Board, board, formatBytes } from "./_progress.ts";
import { interruptible } from "./_interrupt.ts";
import { freshLine } from "./_fresh.ts";
import { parallelOf } from "./_parallel.ts";

type WithStore = <T>(
  ctx: CommandContext,
  create: boolean,
  fn: (store: Store) => Promise<T>,
) => Promise<T>;

/**
 * Per-layer progress on a terminal, as pull shows it: a line per layer of
 * each image, with the bytes read of its blob's size, redrawn in place.
 */
export function layerProgress(b: Board): (p: LoadProgress) => void {
  const rows = new Map<string, number>();
  return (p) => {
    const key = `${p.image}\0${p.layer}`;
    let row = rows.get(key);
    if (row === undefined) rows.set(key, row = rows.size);
    const text = p.state === "reused"
      ? "Already exists"
      : p.state === "done"
      ? "Load complete"
      : `Loading ${formatBytes(p.bytes)}${
        p.total !== undefined ? ` / ${formatBytes(p.total)}` : ""
      }`;
    b.set(
      row,
      `${p.image} layer ${p.layer}/${p.layers} ${p.id.slice(0, 12)}: ${text}`,
      p.state !== "apply",
    );
  };
}

/**
 * The runners of the image commands.
 *
 * @param withStore Opens the store for a command (from `_commands.ts`).
 */
export function imageCommands(
  withStore: WithStore,
): Record<string, (ctx: CommandContext) => Promise<CommandResult>> {
  return {
    tag: (ctx) =>
      withStore(ctx, false, async (store) => {
        const [ref, name] = ctx.args;
        const t = await tagImage(store, ref, name);
        return {
          json: t,
          text: `Tagged ${t.ref} ${t.id}${
            t.movedFrom ? ` (the name was ${t.movedFrom}'s)` : ""
          }`,
        };
      }),
    load: async (ctx) => {
      const [file] = ctx.args;
      let input: ImageInput;
      if (file === undefined || file === "-") {
        if (ctx.io.isTerminal.stdin) {
          throw new UsageError(
            "Refusing to read an image archive from a terminal; pass FILE or DIR, or pipe the archive in",
          );
        }
        input = ctx.io.stdin();
      } else input = file;
      const enabled = ctx.io.isTerminal.stderr && !ctx.global.quiet &&
        !ctx.global.json;
      const onProgress = layerProgress(board(enabled, ctx.io.stderr));
      return await withStore(ctx, true, async (store) => {
        const what = `load of ${
          file === undefined || file === "-" ? "standard input" : file
        }`;
        const images = await interruptible(
          ctx,
          what,
          (signal) =>
            loadImage(store, input, {
              platform: typeof ctx.values.platform === "string"
                ? ctx.values.platform
                : undefined,
              ref: typeof ctx.values.ref === "string"
                ? ctx.values.ref
                : undefined,
              tag: typeof ctx.values.tag === "string"
                ? ctx.values.tag
                : undefined,
              parallel: parallelOf(ctx.values.parallel),
              onProgress,
              signal,
            }),
        );
        return {
          json: {
            images: images.map((i) => ({
              ref: i.ref,
              id: i.id,
              topLayer: i.topLayer,
              layers: i.layers,
            })),
          },
          text: images.map((i) =>
            `Loaded ${i.ref === null ? "" : `${i.ref} `}${i.id}`
          ).join("\n"),
          data: true,
        };
      });
    },

    images: (ctx) =>
      withStore(ctx, false, async (store) => {
        const [ref] = ctx.args;
        // A repository without a tag lists all its tags, as docker images
        // REPO does; a tag, a digest or an id selects one image (every name).
        const repo = ref === undefined ? [] : await listRepository(store, ref);
        const id = ref === undefined || repo.length
          ? undefined
          : (await findImage(store, ref)).id;
        const list = repo.length
          ? repo
          : (await listImages(store)).filter((i) =>
            id === undefined || i.id === id
          );
        const rows = [
          ["REF", "ID", "TOP LAYER", "SIZE", "CREATED"],
          ...list.map((i) => [
            i.ref ?? "<none>",
            i.id.slice(7, 19),
            i.topLayer?.slice(0, 12) ?? "-",
            formatBytes(i.size),
            i.created ?? "-",
          ]),
        ];
        const widths = rows[0].map((_, c) =>
          Math.max(...rows.map((r) => r[c].length))
        );
        return {
          json: {
            images: list.map((i) => ({
              ref: i.ref,
              id: i.id,
              topLayer: i.topLayer,
              size: i.size,
              created: i.created,
            })),
          },
          text: rows.map((r) =>
            r.map((v, c) => c === r.length - 1 ? v : v.padEnd(widths[c]))
              .join("  ")
          ).join("\n"),
          data: true,
        };
      }),

    rmi: (ctx) =>
      withStore(ctx, false, async (store) => {
        // Every name is tried, as docker rmi does: one that fails (no such
        // image) is reported on its own line and the run exits 1, and
        // what the others removed is still said.
        const removed = [];
        const failed = [];
        const lines = [];
        for (const ref of ctx.args) {
          let r;
          try {
            r = await removeImage(store, ref, {
              force: ctx.values.force === true,
            });
          } catch (e) {
            if (!(e instanceof LayerfsError) || e instanceof UsageError) {
              throw e;
            }
            failed.push({ ref, error: { name: e.name, message: e.message } });
            ctx.io.stderr(`layerfs: ${e.message}\n`);
            continue;
          }
          removed.push({ ref, ...r });
          for (const u of r.untagged) lines.push(`Untagged: ${u}`);
          if (r.deleted) lines.push(`Deleted: ${r.deleted}`);
          for (const l of r.removedLayers) lines.push(`Removed layer: ${l}`);
        }
        return {
          json: { removed, failed },
          text: lines.length ? lines.join("\n") : undefined,
          exitCode: failed.length ? 1 : 0,
        };
      }),

    prune: (ctx) =>
      withStore(ctx, false, async (store) => {
        const r = await pruneImages(store);
        const lines = [
          ...r.removedLayers.map((l) => `Removed layer: ${l}`),
          ...r.busy.map((l) =>
            `Left layer: ${l} (a load or pull is working on it)`
          ),
          ...r.removedBlobs.map((b) => `Removed blob: sha256:${b}`),
          ...(r.blobsSkipped
            ? [
              "Left unused blobs (a load or pull is running; prune again later)",
            ]
            : []),
        ];
        return {
          json: r,
          text: lines.length ? lines.join("\n") : "Nothing to prune",
        };
      }),

    save: (ctx) =>
      withStore(ctx, false, async (store) => {
        const output = ctx.values.output;
        if (typeof output !== "string") {
          throw new UsageError("Pass -o FILE: where to write the archive");
        }
        if (output === "-") {
          // Not a file named "-"; an archive is written whole before its
          // name appears, which a pipe cannot give.
          throw new UsageError(
            "save writes a file, not standard output; pass -o FILE (then cat FILE if you need it on a pipe)",
          );
        }
        const format = ctx.values.format ?? "docker";
        if (format !== "docker" && format !== "oci") {
          throw new UsageError(
            `Unknown --format ${JSON.stringify(format)}; use docker or oci`,
          );
        }
        const compress = ctx.values.compress ?? "none";
        if (compress !== "none" && compress !== "gzip" && compress !== "zstd") {
          throw new UsageError(
            `Unknown --compress ${
              JSON.stringify(compress)
            }; use none, gzip or zstd`,
          );
        }
        const saved = await interruptible(
          ctx,
          `save of ${ctx.args.join(" ")}`,
          (signal) =>
            saveImage(store, ctx.args, output, { format, compress, signal }),
        );
        return {
          json: {
            images: saved.map((s) => ({
              ref: s.ref,
              id: s.id,
              storeId: s.storeId,
              fresh: s.fresh,
            })),
          },
          text: saved.flatMap((s) => [
            ...s.fresh.map(freshLine),
            `Saved ${s.ref ? `${s.ref} ` : ""}${s.id}${
              s.id === s.storeId ? "" : ` (was ${s.storeId})`
            }`,
          ]).join("\n"),
        };
      }),
  };
}
