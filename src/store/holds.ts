/**
 * Holds: views a process took for the duration of one call (the two views
 * a `diff`, `changes` or `diffSize` against a layer other than the direct
 * parent compares), recorded so that when the process dies in the middle
 * (Ctrl-C, SIGTERM, kill -9, the OOM killer) the next open gives them back.
 * A count alone cannot say whose it is: counts are cross-process by design
 * (`layerfs mount` in one process, `umount` in another), so only views with
 * a known owner and a known end are held.
 *
 * One file per holding process, `run/holds/<pid>-<starttime>` (starttime:
 * field 22 of `/proc/<pid>/stat`, so a reused pid is not taken for the
 * owner), replaced atomically (temp, rename; not fsynced, as counts are not:
 * after a power loss no view is mounted and the counts are dropped anyway).
 * Its first line names the boot and the pid namespace it was written in;
 * each further line is a layer id it holds, one line per hold (a layer may
 * appear twice).
 *
 * Every hold is one unit of its layer's count. The order keeps that so
 * across kill -9: a take counts first and records after, a release removes
 * the record first and puts after; dying in between leaks at most one count
 * (as an unrecorded get would), never a record without its count, whose
 * release would take someone else's. Where a count is dropped without puts
 * (stale, layer removed, `cleanup`), its layer's holds are dropped first
 * ({@link dropHoldsOf}, {@link dropAllHolds}); a release that finds its
 * record gone then puts nothing. All of it runs under the store lock.
 *
 * @module
 */

import type { StoreLayout } from "../layout.ts";
import { readSmallFile, removeSmallFile } from "../sys/small_file_linux.ts";
import { StoreError } from "../errors.ts";
import { writeFileAtomic } from "./_atomic.ts";
import { validateLayerId } from "./id.ts";

/** One process's hold record. */
export interface Hold {
  /** The file's name in `run/holds/`: `<pid>-<starttime>`. */
  file: string;
  /** The owner's pid (in its pid namespace). */
  pid: number;
  /** The layers it holds, one entry per hold. */
  ids: string[];
  /**
   * Whether its owner is known to have exited: no such process, a reused
   * pid (another start time), a zombie, or a record from an earlier boot.
   * A record from another pid namespace is never called exited (it cannot
   * be told from here).
   */
  exited: boolean;
}

/** What identifies a process: pid, start time, boot, pid namespace. */
interface Identity {
  pid: number;
  start: number;
  boot: string;
  pidns: string;
}

const NAME_RE = /^([0-9]{1,10})-([0-9]{1,20})$/;
const DECODER = new TextDecoder();
let self: Identity | undefined;
let buf: Uint8Array<ArrayBuffer> | undefined;

/** `/proc/<pid>/stat`'s state (field 3) and start time (field 22), or undefined when there is no such process. */
function statOf(pid: number): { state: string; start: number } | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: fields
  // are counted after its last ")".
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: rest[0], start: Number(rest[19]) };
}

function readOr(path: string, f: (s: string) => string): string {
  try {
    return f(Deno.readTextFileSync(path));
  } catch {
    return "";
  }
}

/** This process's identity (read once). */
function me(): Identity {
  if (self) return self;
  const st = statOf(Deno.pid);
  if (!st) {
    throw new StoreError("Cannot read /proc/self/stat: is /proc mounted?");
  }
  let pidns = "";
  try {
    pidns = Deno.readLinkSync("/proc/self/ns/pid").replace(/\D/g, "");
  } catch { /* no ns links (an old kernel): namespaces are not compared */ }
  self = {
    pid: Deno.pid,
    start: st.start,
    boot: readOr("/proc/sys/kernel/random/boot_id", (s) => s.trim()),
    pidns,
  };
  return self;
}

/**
 * This process's hold file name, `<pid>-<starttime>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { holdName } from "./holds.ts";
 * assert.match(holdName(), new RegExp(`^${Deno.pid}-[0-9]+$`));
 * ```
 */
export function holdName(): string {
  const m = me();
  return `${m.pid}-${m.start}`;
}

/** Whether the owner of a record named `file` with header `header` has exited. */
function ownerExited(file: string, header: Partial<Identity>): boolean {
  const m = NAME_RE.exec(file)!;
  const pid = Number(m[1]);
  const id = me();
  if (header.boot && id.boot && header.boot !== id.boot) return true;
  if (header.pidns && id.pidns && header.pidns !== id.pidns) return false;
  const st = statOf(pid);
  if (!st) return true;
  return st.start !== Number(m[2]) || st.state === "Z" || st.state === "X";
}

/** The header line of this process's records. */
function ownHeader(): string {
  const m = me();
  return `# boot ${m.boot || "-"} pidns ${m.pidns || "-"}`;
}

/** The header line of a record's text (another process's is kept as it is). */
function headerOf(text: string): string {
  return text.startsWith("#") ? text.slice(0, text.indexOf("\n")) : "#";
}

/** The header and ids of a record's text; lines that are not layer ids are skipped. */
function parse(text: string): { header: Partial<Identity>; ids: string[] } {
  const header: Partial<Identity> = {};
  const ids: string[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) {
      const w = line.split(" ");
      const at = (k: string) => {
        const v = w[w.indexOf(k) + 1];
        return w.includes(k) && v && v !== "-" ? v : undefined;
      };
      header.boot = at("boot");
      header.pidns = at("pidns");
      continue;
    }
    try {
      ids.push(validateLayerId(line));
    } catch { /* blank or foreign lines hold nothing */ }
  }
  return { header, ids };
}

/** A record's text, or undefined when it does not exist (no exception: this runs on every comparison). */
function readRecord(path: string): string | undefined {
  buf ??= new Uint8Array(64 * 1024);
  const n = readSmallFile(path, buf);
  if (n < 0) return undefined;
  if (n < buf.length) return DECODER.decode(buf.subarray(0, n));
  return Deno.readTextFileSync(path); // a record too big for the buffer
}

/** Replaces record `file` with `header` and `ids` (deleting it when there are none). */
async function writeRecord(
  layout: StoreLayout,
  file: string,
  header: string,
  ids: string[],
): Promise<void> {
  const path = layout.holds(file);
  if (ids.length === 0) {
    try {
      removeSmallFile(path);
    } catch (e) {
      throw new StoreError(
        `Cannot delete ${path} (${(e as Error).message}); delete it by hand`,
        { cause: e },
      );
    }
    return;
  }
  const text = `${header}\n${ids.map((id) => `${id}\n`).join("")}`;
  try {
    await writeFileAtomic(path, text, { durable: false });
  } catch (e) {
    // Stores made before holds, and a tmpfs mounted on run/, have no run/holds.
    if (!((e as Error).cause instanceof Deno.errors.NotFound)) throw e;
    Deno.mkdirSync(layout.holds(), { recursive: true, mode: 0o700 });
    await writeFileAtomic(path, text, { durable: false });
  }
}

/** Names in `run/holds/` that are records (not temp files); none when there is no such dir. */
function recordNames(layout: StoreLayout): string[] {
  try {
    return [...Deno.readDirSync(layout.holds())]
      .filter((e) => e.isFile && NAME_RE.test(e.name))
      .map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/**
 * Every hold record in the store, with whether its owner has exited.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { addHolds, holdName, readHolds } from "./holds.ts";
 * const root = await Deno.makeTempDir();
 * const layout = new StoreLayout(root);
 * assert.deepEqual(readHolds(layout), []); // no run/holds yet
 * await addHolds(layout, ["app", "base"]);
 * await Deno.mkdir(`${root}/run/holds`, { recursive: true });
 * await Deno.writeTextFile(`${root}/run/holds/${Deno.pid}-1`, "app\n"); // our pid, another start time
 * assert.deepEqual(readHolds(layout).map((h) => [h.file, h.ids, h.exited]), [
 *   [`${Deno.pid}-1`, ["app"], true],
 *   [holdName(), ["app", "base"], false],
 * ]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function readHolds(layout: StoreLayout): Hold[] {
  const out: Hold[] = [];
  for (const file of recordNames(layout)) {
    const text = readRecord(layout.holds(file));
    if (text === undefined) continue;
    const { header, ids } = parse(text);
    out.push({
      file,
      pid: Number(NAME_RE.exec(file)![1]),
      ids,
      exited: ownerExited(file, header),
    });
  }
  return out;
}

/**
 * Records that this process holds `ids` (caller holds the store lock and
 * has counted them: count first, record after).
 *
 * @throws {StoreError} naming the file when it cannot be written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { addHolds, holdName, removeHolds } from "./holds.ts";
 * const root = await Deno.makeTempDir();
 * const layout = new StoreLayout(root);
 * await addHolds(layout, ["app", "app"]);
 * const text = await Deno.readTextFile(`${root}/run/holds/${holdName()}`);
 * assert.deepEqual(text.split("\n").slice(1), ["app", "app", ""]);
 * assert.deepEqual(await removeHolds(layout, ["app", "app"]), ["app", "app"]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function addHolds(
  layout: StoreLayout,
  ids: string[],
): Promise<void> {
  const file = holdName();
  const text = readRecord(layout.holds(file));
  const held = text === undefined ? [] : parse(text).ids;
  await writeRecord(layout, file, ownHeader(), [...held, ...ids]);
}

/**
 * Removes one of this process's holds of each of `ids` (caller holds the
 * store lock; it puts afterwards: record removed first). Returns the ids
 * whose hold was there: a hold dropped meanwhile (its count was dropped as
 * stale, the layer removed, `cleanup` run) is not there, and must not be
 * put, since its count is no longer part of the layer's.
 *
 * @throws {StoreError} naming the file when it cannot be written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { addHolds, readHolds, removeHolds } from "./holds.ts";
 * const root = await Deno.makeTempDir();
 * const layout = new StoreLayout(root);
 * await addHolds(layout, ["app"]);
 * assert.deepEqual(await removeHolds(layout, ["app", "base"]), ["app"]);
 * assert.deepEqual(readHolds(layout), []); // the empty record is deleted
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function removeHolds(
  layout: StoreLayout,
  ids: string[],
): Promise<string[]> {
  const file = holdName();
  const text = readRecord(layout.holds(file));
  if (text === undefined) return [];
  const held = parse(text).ids;
  const removed: string[] = [];
  for (const id of ids) {
    const i = held.lastIndexOf(id);
    if (i < 0) continue;
    held.splice(i, 1);
    removed.push(id);
  }
  if (removed.length) await writeRecord(layout, file, ownHeader(), held);
  return removed;
}

/**
 * Releases one hold of record `file` (a dead owner's, caller holds the
 * store lock): rewrites the record without one `id`, keeping its header,
 * or deletes it when it held nothing else. The caller puts afterwards.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { dropHold, readHolds } from "./holds.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run/holds`, { recursive: true });
 * await Deno.writeTextFile(`${root}/run/holds/999999999-5`, "# boot - pidns -\napp\nbase\n");
 * const layout = new StoreLayout(root);
 * await dropHold(layout, "999999999-5", "app");
 * assert.deepEqual(readHolds(layout).map((h) => h.ids), [["base"]]);
 * await dropHold(layout, "999999999-5", "base");
 * assert.deepEqual(readHolds(layout), []);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function dropHold(
  layout: StoreLayout,
  file: string,
  id: string,
): Promise<void> {
  const text = readRecord(layout.holds(file));
  if (text === undefined) return;
  const ids = parse(text).ids;
  const i = ids.lastIndexOf(id);
  if (i < 0) return;
  ids.splice(i, 1);
  await writeRecord(layout, file, headerOf(text), ids);
}

/**
 * Drops every process's holds of `ids` without putting (caller holds the
 * store lock, and drops those layers' counts right after): for counts found
 * stale, layers removed. Reads nothing when `ids` is empty.
 *
 * @throws {StoreError} naming the file when it cannot be written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { addHolds, dropHoldsOf, readHolds } from "./holds.ts";
 * const root = await Deno.makeTempDir();
 * const layout = new StoreLayout(root);
 * await addHolds(layout, ["app", "base", "app"]);
 * await dropHoldsOf(layout, ["app"]);
 * assert.deepEqual(readHolds(layout).map((h) => h.ids), [["base"]]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function dropHoldsOf(
  layout: StoreLayout,
  ids: Iterable<string>,
): Promise<void> {
  const drop = new Set(ids);
  if (drop.size === 0) return;
  for (const file of recordNames(layout)) {
    const text = readRecord(layout.holds(file));
    if (text === undefined) continue;
    const held = parse(text).ids;
    const kept = held.filter((id) => !drop.has(id));
    if (kept.length === held.length) continue;
    await writeRecord(layout, file, headerOf(text), kept);
  }
}

/**
 * Deletes every hold record (caller holds the store lock and forgets every
 * count right after: `cleanup`).
 *
 * @throws {StoreError} naming the file when it cannot be deleted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { addHolds, dropAllHolds, readHolds } from "./holds.ts";
 * const root = await Deno.makeTempDir();
 * const layout = new StoreLayout(root);
 * await addHolds(layout, ["app"]);
 * dropAllHolds(layout);
 * assert.deepEqual(readHolds(layout), []);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function dropAllHolds(layout: StoreLayout): void {
  for (const file of recordNames(layout)) {
    try {
      removeSmallFile(layout.holds(file));
    } catch (e) {
      throw new StoreError(
        `Cannot delete ${layout.holds(file)} (${
          (e as Error).message
        }); delete it by hand`,
        { cause: e },
      );
    }
  }
}
