/**
 * The CLI's commands: each takes parsed arguments and a {@link CliIo}, calls
 * the store API, and returns what to print (text and a JSON document).
 *
 * @module
 */

import {
  InvalidArchive,
  InvalidLayerId,
  LayerfsError,
  LayerNotMounted,
  StoreError,
  UsageError,
} from "../errors.ts";
import { openStore } from "../store/open.ts";
import { validateLayerId } from "../store/id.ts";
import type { Store } from "../store/store.ts";
import { openOutput } from "../_output_file.ts";
import {
  EXIT_BROKEN_PIPE,
  isBrokenPipe,
  namedFsError,
  namedStream,
  namedWriter,
  readFileStream,
} from "./_io_errors.ts";
import { makeProgress } from "./_progress.ts";
import { interruptible } from "./_interrupt.ts";
import { quotePath } from "./_quote.ts";
import { type ByteWriter, writeToFile } from "../archive/write_file.ts";
import { helperMounter } from "../mount/helper_mounter.ts";
import { loginCommands } from "./login.ts";
import { imageCommands } from "./_image_commands.ts";
import { registryCommands } from "./_registry_commands.ts";
import { findImage, forgetReleased } from "../image/lazy.ts";
import { type LayerArgOptions, resolveLayer } from "./_layer_arg.ts";
import { exists } from "../_fs.ts";
import { StoreLayout } from "../layout.ts";
import { withStoreLock } from "../store/refcounts.ts";
import { readMountInfo } from "../mount/mountinfo.ts";

export type { CliIo, CommandContext, CommandResult } from "./_types.ts";
import type { CommandContext, CommandResult } from "./_types.ts";
import { loadModule } from "../_load_module.ts";

type Run = (ctx: CommandContext) => Promise<CommandResult>;

// Loaded by the commands that use them, not at start-up: every command
// loads this module, and `ls` or `mount` need no compressor, store checker
// or helper installer (README "Start-up").
const compressors = () =>
  loadModule<typeof import("../archive/compress/mod.ts")>(
    new URL("../archive/compress/mod.ts", import.meta.url),
  );
const checker = () =>
  loadModule<typeof import("./check.ts")>(
    new URL("./check.ts", import.meta.url),
  );
const helperSetup = () =>
  loadModule<typeof import("../../helper/install.ts")>(
    new URL("../../helper/install.ts", import.meta.url),
  );

async function storeExists(root: string): Promise<boolean> {
  try {
    await Deno.lstat(`${root}/layerfs.json`);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    if (e instanceof Deno.errors.NotADirectory) throw await notADirectory(root);
    throw e;
  }
}

/**
 * The error for a root that is, or lies under, something that is not a
 * directory (ENOTDIR from a lookup), naming which path it is: the raw
 * "lstat '<root>/layerfs.json'" says neither that nor what to do.
 */
async function notADirectory(
  root: string,
  creating = false,
): Promise<StoreError> {
  // The topmost path of root's that exists and is no directory.
  let culprit = root;
  for (let p = root; p !== "/" && p !== "";) {
    try {
      if (!(await Deno.stat(p)).isDirectory) culprit = p;
    } catch { /* missing or itself under the culprit */ }
    p = p.slice(0, p.lastIndexOf("/")) || "/";
  }
  const what = culprit === root
    ? "it is not a directory"
    : `${culprit} is not a directory`;
  // The words openStore uses for a root that is a file, when creating.
  return new StoreError(
    creating
      ? `Cannot open a store at ${root}: ${what}; give a directory, or a path that does not exist yet, as the root`
      : `No layerfs store at ${root}: ${what}; pass a store's directory as --root, or a new path and run "layerfs --root DIR init" there`,
  );
}

/**
 * Opens the store. Commands that only read or change existing layers refuse a
 * root that holds no store (so a typo in --root does not create one).
 */
async function withStore<T>(
  ctx: CommandContext,
  create: boolean,
  fn: (store: Store) => Promise<T>,
): Promise<T> {
  if (!create && !(await storeExists(ctx.root))) {
    throw new StoreError(
      `No layerfs store at ${ctx.root}; run "layerfs --root ${ctx.root} init" or pass the right --root`,
    );
  }
  // A root that does not exist yet is made by this command: if the command
  // fails, the empty store goes again (a typo'd --root with a bad tar leaves
  // nothing behind).
  const fresh = create && !(await exists(ctx.root).catch(async (e) => {
    throw e instanceof Deno.errors.NotADirectory
      ? await notADirectory(ctx.root, true)
      : e;
  }));
  // Not root: mounts go through the privileged helper when one is configured
  // (LAYERFS_HELPER, e.g. "sudo -n /usr/local/bin/layerfs-helper").
  const helper = ctx.io.env("LAYERFS_HELPER");
  const store = await openStore({
    root: ctx.root,
    backend: ctx.global.backend,
    mounter: ctx.io.uid !== 0 && helper ? helperMounter(helper) : undefined,
  });
  try {
    return await fn(store);
  } catch (e) {
    store.close();
    if (fresh) await removeIfEmptyStore(ctx.root);
    throw e;
  } finally {
    store.close();
  }
}

/**
 * Removes the store at `root` if it holds nothing but what opening it made
 * (empty dirs, `layerfs.json`, lock files) and nothing is mounted under it,
 * under the store lock: another command that started using the new root
 * meanwhile (a staging dir, a spool, a layer) keeps it.
 */
async function removeIfEmptyStore(root: string): Promise<void> {
  try {
    await withStoreLock(new StoreLayout(root), async () => {
      if (
        (await readMountInfo()).some((m) => m.mountPoint.startsWith(`${root}/`))
      ) {
        return;
      }
      if (!(await onlySkeleton(root, ""))) return;
      await Deno.remove(root, { recursive: true });
    });
  } catch {
    /* best effort: an empty store left behind is harmless */
  }
}

/** True when the tree under `root/rel` has no file but `layerfs.json` and lock files. */
async function onlySkeleton(root: string, rel: string): Promise<boolean> {
  for await (const e of Deno.readDir(`${root}/${rel}`)) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) {
      if (!(await onlySkeleton(root, path))) return false;
    } else if (
      !(path === "layerfs.json" || e.name === "lock" ||
        path.startsWith("images/locks/"))
    ) return false;
  }
  return true;
}

/**
 * The layer a diff, changes or size compared `id` with, for JSON: `--parent`
 * as given, else `id`'s direct parent (null for a base layer).
 */
async function comparedWith(
  store: Store,
  id: string,
  parent: string | undefined,
): Promise<string | null> {
  return parent ?? (await store.parents(id))[0] ?? null;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function progressFor(ctx: CommandContext, label: string) {
  return makeProgress(
    label,
    ctx.io.isTerminal.stderr && !ctx.global.quiet && !ctx.global.json,
    ctx.io.stderr,
  );
}

/** `status` lines that are counts: numbers in JSON. */
const NUMERIC_STATUS = new Set([
  "layers",
  "mounted views",
  "outstanding gets",
  "format version",
]);

/** Layer arguments of commands that read a layer may name an image (its top layer). */
const READS = { images: true } as const;

/** `--parent`, resolved as a layer argument (see `_layer_arg.ts`). */
async function resolveParent(
  store: Store,
  ctx: CommandContext,
  options?: LayerArgOptions,
): Promise<string | undefined> {
  const p = str(ctx.values.parent);
  return p === undefined ? undefined : await resolveLayer(store, p, options);
}

const commands: Record<string, Run> = {
  ...imageCommands(withStore),
  ...registryCommands(withStore),
  init: (ctx) =>
    withStore(ctx, true, (store) =>
      Promise.resolve({
        json: { root: ctx.root, backend: store.backend },
        text: `initialised ${ctx.root} (backend ${store.backend})`,
      })),

  status: (ctx) =>
    withStore(ctx, false, async (store) => {
      const status = await store.status();
      const width = Math.max(...status.map(([k]) => k.length));
      return {
        // JSON keys are camelCase ("mounted views" is mountedViews).
        json: Object.fromEntries(
          status.map((
            [k, v],
          ) => [
            k.replace(/ (\w)/g, (_, c: string) => c.toUpperCase()),
            NUMERIC_STATUS.has(k) ? Number(v) : v,
          ]),
        ),
        text: status.map(([k, v]) => `${(k + ":").padEnd(width + 1)} ${v}`)
          .join("\n"),
        data: true,
      };
    }),

  create: (ctx) =>
    withStore(ctx, true, async (store) => {
      const [id] = ctx.args;
      const image = str(ctx.values.image);
      if (image !== undefined && ctx.values.parent !== undefined) {
        throw new UsageError("Pass --parent or --image, not both");
      }
      const parent = image !== undefined
        ? (await findImage(store, image)).topLayer ?? undefined
        : await resolveParent(store, ctx);
      const mountLabel = str(ctx.values["mount-label"]);
      const rw = ctx.values.rw === true;
      if (rw) await store.createReadWrite(id, parent, { mountLabel });
      else await store.create(id, parent, { mountLabel });
      return {
        json: { id, parent: parent ?? null, readWrite: rw },
        text: `created ${rw ? "read-write" : "read-only"} layer ${id}${
          parent ? ` on ${parent}` : ""
        }`,
      };
    }),

  rm: (ctx) =>
    withStore(ctx, false, async (store) => {
      // As rmi: every id is tried on its own (each removal all or nothing);
      // one that fails is reported on its own line and the run exits 1.
      const force = ctx.values.force === true;
      const removed: { id: string; layers: string[] }[] = [];
      const failed: { id: string; error: { name: string; message: string } }[] =
        [];
      const gone = new Set<string>();
      // Every argument is resolved (a short id, exactly one layer's) before
      // anything is removed: an ambiguous one stops the run with nothing done.
      const ids: string[] = [];
      for (const arg of ctx.args) ids.push(await resolveLayer(store, arg));
      for (const id of ids) {
        // Already removed in this run (named twice, or a descendant of an
        // id --force removed): that is done, not "does not exist".
        if (gone.has(id)) continue;
        let layers;
        try {
          // A layer an image uses is refused by the store (LayerUsedByImage).
          layers = await store.remove(id, { force });
        } catch (e) {
          if (!(e instanceof LayerfsError) || e instanceof UsageError) throw e;
          failed.push({ id, error: { name: e.name, message: e.message } });
          ctx.io.stderr(`layerfs: ${e.message}\n`);
          continue;
        }
        for (const l of layers) gone.add(l);
        removed.push({ id, layers });
      }
      // Layers an rmi --force released are no image's leftovers any more.
      const layersGone = removed.flatMap((r) => r.layers);
      if (layersGone.some((l) => /^[0-9a-f]{64}$/.test(l))) {
        await forgetReleased(store, layersGone);
      }
      const lines = removed.flatMap((r) => r.layers.map((l) => `removed ${l}`));
      return {
        json: { removed, failed },
        text: lines.length ? lines.join("\n") : undefined,
        exitCode: failed.length ? 1 : 0,
      };
    }),

  exists: async (ctx) => {
    const [id] = ctx.args;
    // Exit 1 means "absent": a name that can be no layer is a usage error
    // (exit 2), so a script never reads a typo as "not there".
    try {
      validateLayerId(id);
    } catch (e) {
      throw e instanceof InvalidLayerId ? new UsageError(e.message) : e;
    }
    const exists = (await storeExists(ctx.root)) &&
      await withStore(ctx, false, (store) => store.exists(id));
    return {
      json: { id, exists },
      text: exists ? `layer ${id} exists` : `layer ${id} does not exist`,
      exitCode: exists ? 0 : 1,
    };
  },

  ls: (ctx) =>
    withStore(ctx, false, async (store) => {
      const layers = await store.list();
      layers.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      // A damaged layer's kind may be unknown (its meta unreadable): it is
      // shown as "damaged", with why in a PROBLEM column that only a store
      // with damage gets (so healthy output stays as it was).
      const damage = layers.some((l) => l.damaged !== undefined);
      const rows = [
        ["ID", "PARENT", "KIND", "MOUNTS", ...(damage ? ["PROBLEM"] : [])],
        ...layers.map((
          l,
        ) => [
          l.id,
          l.parent ?? "-",
          l.damaged !== undefined ? "damaged" : l.readWrite ? "rw" : "ro",
          String(l.mounts),
          ...(damage ? [l.damaged ?? "-"] : []),
        ]),
      ];
      const widths = rows[0].map((_, i) =>
        Math.max(...rows.map((r) => r[i].length))
      );
      return {
        json: {
          layers: layers.map((l) => ({
            id: l.id,
            parent: l.parent ?? null,
            readWrite: l.readWrite,
            mounts: l.mounts,
            ...(l.damaged !== undefined ? { damaged: l.damaged } : {}),
          })),
        },
        text: rows.map((r) =>
          r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i])).join(
            "  ",
          )
        ).join("\n"),
        data: true,
      };
    }),

  commit: (ctx) =>
    withStore(ctx, false, async (store) => {
      const id = await resolveLayer(store, ctx.args[0]);
      const newId = ctx.args[1];
      await store.commit(id, newId);
      return {
        json: { id: newId, committedFrom: id },
        text: `committed ${id} as ${newId}`,
      };
    }),

  usage: (ctx) =>
    withStore(ctx, false, async (store) => {
      const id = await resolveLayer(store, ctx.args[0], READS);
      const u = await store.usage(id);
      return {
        json: { id, ...u },
        text: [
          `layer: ${u.layer.size} bytes, ${u.layer.inodes} inodes`,
          `chain: ${u.chain.size} bytes, ${u.chain.inodes} inodes`,
        ].join("\n"),
        data: true,
      };
    }),

  mount: (ctx) =>
    withStore(ctx, false, async (store) => {
      const id = await resolveLayer(store, ctx.args[0], READS);
      const path = await store.get(id, {
        mountLabel: str(ctx.values["mount-label"]),
      });
      return { json: { id, path }, text: path, data: true };
    }),

  umount: (ctx) =>
    withStore(ctx, false, async (store) => {
      const id = await resolveLayer(store, ctx.args[0], READS);
      // Checked here too, so the CLI refuses with any store version (put
      // itself throws LayerNotMounted once the store checks it).
      const layer = (await store.list()).find((l) => l.id === id);
      if (layer && layer.mounts === 0) throw new LayerNotMounted(id);
      await store.put(id);
      return { json: { id, released: true }, text: `released ${id}` };
    }),

  apply: async (ctx) => {
    const [id, file] = ctx.args;
    const fromStdin = file === undefined || file === "-";
    const name = fromStdin ? "stdin" : file;
    if (fromStdin && ctx.io.isTerminal.stdin) {
      throw new UsageError(
        "Refusing to read a tar from a terminal; pass FILE or pipe the tar into standard input",
      );
    }
    const progress = progressFor(ctx, `apply ${id}`);
    const counted = (n: number) => progress.bytes(n);
    // Ctrl-C fails the input's next read: the store removes its staging and
    // the command ends with one "apply of ID interrupted" line.
    return await interruptible(ctx, `apply of ${id}`, async (signal) => {
      const input = fromStdin
        ? namedStream(ctx.io.stdin(), name, counted, signal)
        : await readFileStream(file, counted, signal);
      let tar: ReadableStream<Uint8Array> = input;
      try {
        // Only to report it: the store decompresses (and checks) by itself.
        const { peekCompression } = await compressors();
        const peeked = await peekCompression(input, { name });
        const compression = peeked.compression;
        tar = peeked.tar as ReadableStream<Uint8Array>;
        return await withStore(ctx, true, async (store) => {
          const parent = await resolveParent(store, ctx);
          const size = await store.applyDiff(id, parent, tar);
          progress.done();
          return {
            json: { id, parent: parent ?? null, size, compression },
            text: String(size),
            data: true,
          };
        });
      } catch (e) {
        // Closes the file when the store never read it (e.g. no such parent).
        if (!tar.locked) await tar.cancel(e).catch(() => {});
        throw e instanceof InvalidArchive ? e.withInput(name) : e;
      }
    });
  },

  diff: (ctx) =>
    withStore(ctx, false, async (store) => {
      const id = await resolveLayer(store, ctx.args[0], READS);
      const parent = await resolveParent(store, ctx, READS);
      // `-o -` is standard output, as for tar -f - (not a file named "-").
      const out = str(ctx.values.output) === "-"
        ? undefined
        : str(ctx.values.output);
      const kind = str(ctx.values.compress);
      if (kind !== undefined && kind !== "gzip" && kind !== "zstd") {
        throw new UsageError(
          `Unknown compression ${JSON.stringify(kind)}; use gzip or zstd`,
        );
      }
      if (out === undefined && ctx.io.isTerminal.stdout) {
        throw new UsageError(
          "Refusing to write a tar to a terminal; pass -o FILE or redirect standard output",
        );
      }
      if (out === undefined && ctx.global.json) {
        throw new UsageError(
          "--json needs -o FILE with diff: the tar itself goes to standard output",
        );
      }
      const progress = progressFor(ctx, `diff ${id}`);
      // Progress counts tar bytes; the result counts what reached the output.
      const diff = store.diff(id, parent);
      const onTar = (n: number) => progress.bytes(n);
      const write = async (sink: ByteWriter) =>
        kind
          ? (await compressors()).writeCompressed(diff, kind, sink, onTar)
          : await writeToFile(diff, sink, onTar);
      if (out === undefined) {
        try {
          await write(namedWriter(ctx.io.stdout(), "standard output"));
        } catch (e) {
          // `layerfs diff x | head`: the reader is gone; end quietly, as a
          // process killed by SIGPIPE would (Deno ignores the signal).
          if (isBrokenPipe(e)) {
            return {
              json: null,
              wroteStdout: true,
              exitCode: EXIT_BROKEN_PIPE,
            };
          }
          throw e;
        }
        progress.done();
        return { json: null, wroteStdout: true };
      }
      const output = await openOutput(out).catch((e) => {
        throw namedFsError(e, "write to", out);
      });
      let written: number;
      try {
        written = await write(namedWriter(output.file, out));
        await output.commit().catch((e) => {
          throw namedFsError(e, "write to", out);
        });
      } catch (e) {
        await output.abort();
        throw e;
      }
      progress.done();
      return {
        json: {
          id,
          parent: await comparedWith(store, id, parent),
          file: out,
          bytes: written,
          compression: kind ?? null,
        },
        text: `wrote ${out} (${written} bytes)`,
      };
    }),

  changes: (ctx) =>
    withStore(ctx, false, async (store) => {
      const id = await resolveLayer(store, ctx.args[0], READS);
      const parent = await resolveParent(store, ctx, READS);
      const changes = await store.changes(id, parent);
      const letter = { add: "A", modify: "C", delete: "D" } as const;
      return {
        json: { id, parent: await comparedWith(store, id, parent), changes },
        text: changes.map((c) => `${letter[c.kind]} ${quotePath(c.path)}`)
          .join("\n") ||
          undefined,
        data: true,
      };
    }),

  size: (ctx) =>
    withStore(ctx, false, async (store) => {
      const id = await resolveLayer(store, ctx.args[0], READS);
      const parent = await resolveParent(store, ctx, READS);
      const size = await store.diffSize(id, parent);
      return {
        json: { id, parent: await comparedWith(store, id, parent), size },
        text: String(size),
        data: true,
      };
    }),

  cleanup: (ctx) =>
    withStore(ctx, false, async (store) => {
      await store.cleanup();
      return {
        json: { root: ctx.root, cleaned: true },
        text: `cleaned up ${ctx.root}`,
      };
    }),

  check: async (ctx) => {
    if (!(await storeExists(ctx.root))) {
      throw new StoreError(
        `No layerfs store at ${ctx.root}; pass the right --root`,
      );
    }
    const { checkStore } = await checker();
    const report = await checkStore(ctx.root, {
      repair: ctx.values.repair === true,
    });
    const lines = report.problems.map((p) =>
      `${p.repaired ? "repaired" : "problem"}: ${p.message}`
    );
    const left = report.problems.filter((p) => !p.repaired).length;
    lines.push(
      report.problems.length === 0
        ? `store ${ctx.root} is consistent`
        : `${report.problems.length} problem(s), ${left} left`,
    );
    return {
      json: report,
      text: lines.join("\n"),
      data: true,
      exitCode: left === 0 ? 0 : 1,
    };
  },

  helper: async (ctx) => {
    const [sub] = ctx.args;
    if (sub === "install") {
      const { helperInstall } = await helperSetup();
      const r = await helperInstall({
        group: str(ctx.values.group),
        path: str(ctx.values.path),
        stores: ctx.values.store as string[] | undefined,
      });
      return { json: r, text: r.messages.join("\n") };
    }
    if (sub === "doctor") {
      const { helperDoctor } = await helperSetup();
      const r = await helperDoctor({ path: str(ctx.values.path) });
      return {
        json: r,
        text: r.checks.map((c) => `${c.ok ? "ok  " : "FAIL"} ${c.message}`)
          .join("\n"),
        data: true,
        exitCode: r.ok ? 0 : 1,
      };
    }
    throw new UsageError(
      `Unknown helper command ${JSON.stringify(sub)}; use install or doctor`,
    );
  },

  ...loginCommands,
};

/**
 * Runs one command by its canonical name.
 *
 * @example
 * ```ts ignore
 * import { runCommand } from "./_commands.ts";
 * const r = await runCommand("ls", ctx);
 * ```
 */
export function runCommand(
  name: string,
  ctx: CommandContext,
): Promise<CommandResult> {
  const run = commands[name];
  if (!run) throw new UsageError(`Unknown command "${name}"`);
  return run(ctx);
}
