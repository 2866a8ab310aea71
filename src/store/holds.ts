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
 * owner), rewritten in place with one write(2) (see `writeRecord`; not
 * fsynced, as counts are not: after a power loss no view is mounted and the
 * counts are dropped anyway). Its first line names the boot and the pid
 * namespace it was written in; each further line, up to an empty one, is a
 * layer id it holds, one line per hold (a layer may appear twice). A process
 * that gave everything back leaves its record empty; open deletes it once
 * the process has exited.
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
import { SysError } from "../sys/libc_linux.ts";
import {
  readSmallFile,
  removeSmallFile,
  writeSmallFile,
} from "../sys/small_file_linux.ts";
import { StoreError } from "../errors.ts";
import { validateLayerId } from "./id.ts";
import { removeRunFile } from "./refcounts.ts";

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
const ENCODER = new TextEncoder();
/** What one write(2) puts down whole against SIGKILL (within a page). */
const PAGE = 4096;
let self: Identity | undefined;
let buf: Uint8Array<ArrayBuffer> | undefined;

/**
 * `/proc/<pid>/stat`'s state (field 3) and start time (field 22), undefined
 * when there is no such process, or "unknown" when it cannot be read (a
 * `/proc` mounted with hidepid): then the owner counts as alive, since
 * releasing a live process's views would unmount them under it.
 */
function statOf(
  pid: number | "self",
): { state: string; start: number } | undefined | "unknown" {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    return "unknown";
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
  // /proc/self: the pid in this /proc's namespace, which Deno.pid may not be.
  const st = statOf("self");
  if (!st || st === "unknown") {
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
  if (st === "unknown") return false;
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

/**
 * The header and ids of a record's text: the lines after the header up to
 * the first empty one (an in-place rewrite leaves the old tail after it);
 * lines that are not layer ids are skipped.
 */
function parse(text: string): { header: Partial<Identity>; ids: string[] } {
  const header: Partial<Identity> = {};
  const ids: string[] = [];
  const lines = text.split("\n");
  if (lines[0].startsWith("#")) {
    const w = lines.shift()!.split(" ");
    const at = (k: string) => {
      const v = w[w.indexOf(k) + 1];
      return w.includes(k) && v && v !== "-" ? v : undefined;
    };
    header.boot = at("boot");
    header.pidns = at("pidns");
  }
  for (const line of lines) {
    if (line === "") break;
    try {
      ids.push(validateLayerId(line));
    } catch { /* foreign lines hold nothing */ }
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

/**
 * Replaces record `file` with `header` and `ids` (an empty line ends them).
 * Synchronous small-file calls, in place: this runs twice on every
 * comparison, and a create plus unlink of a file each time cost ~1.5 ms on
 * ext4 (its journal) against ~0.02 ms for a write. A record that fits in a
 * page is written over the old one with one write(2) (not cut by SIGKILL;
 * a longer old text's tail stays after the empty line, which ends it); a
 * kill between create and write leaves an empty record, which holds
 * nothing (at most the count just taken leaks, the window every take has).
 * A bigger record is replaced by a temp file renamed over it. `unlink`
 * deletes a record left holding nothing (a dead owner's): a live owner's
 * stays, to be written again.
 */
function writeRecord(
  layout: StoreLayout,
  file: string,
  header: string,
  ids: string[],
  unlink = false,
): void {
  const path = layout.holds(file);
  const bytes = ENCODER.encode(
    `${header}\n${ids.map((id) => `${id}\n`).join("")}\n`,
  );
  try {
    if (ids.length === 0 && unlink) removeSmallFile(path);
    else if (bytes.length <= PAGE) writeInPlace(layout, path, bytes);
    else {
      const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
      try {
        writeInPlace(layout, tmp, bytes);
        Deno.renameSync(tmp, path);
      } catch (e) {
        try {
          removeSmallFile(tmp);
        } catch { /* the sweep of temp files on open deletes it */ }
        throw e;
      }
    }
  } catch (e) {
    throw new StoreError(
      `Cannot write ${path} (${(e as Error).message}); ` +
        "the filesystem may be full: free space and retry",
      { cause: e },
    );
  }
}

/** Writes `bytes` over the start of `path` (one write), creating it, and `run/holds/`, when missing. */
function writeInPlace(
  layout: StoreLayout,
  path: string,
  bytes: Uint8Array<ArrayBuffer>,
): void {
  try {
    writeSmallFile(path, bytes);
  } catch (e) {
    // Stores made before holds, and a tmpfs mounted on run/, have no run/holds.
    if (!(e instanceof SysError && e.code === "ENOENT")) throw e;
    Deno.mkdirSync(layout.holds(), { recursive: true, mode: 0o700 });
    writeSmallFile(path, bytes);
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
 * addHolds(layout, ["app", "base"]);
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
 * addHolds(layout, ["app", "app"]);
 * const text = await Deno.readTextFile(`${root}/run/holds/${holdName()}`);
 * assert.deepEqual(text.split("\n").slice(1), ["app", "app", "", ""]); // an empty line ends it
 * assert.deepEqual(removeHolds(layout, ["app", "app"]), ["app", "app"]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function addHolds(layout: StoreLayout, ids: string[]): void {
  const file = holdName();
  const text = readRecord(layout.holds(file));
  const held = text === undefined ? [] : parse(text).ids;
  writeRecord(layout, file, ownHeader(), [...held, ...ids]);
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
 * addHolds(layout, ["app"]);
 * assert.deepEqual(removeHolds(layout, ["app", "base"]), ["app"]);
 * // The record stays, holding nothing, to be written again.
 * assert.deepEqual(readHolds(layout).map((h) => h.ids), [[]]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function removeHolds(layout: StoreLayout, ids: string[]): string[] {
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
  if (removed.length) writeRecord(layout, file, ownHeader(), held);
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
 * dropHold(layout, "999999999-5", "app");
 * assert.deepEqual(readHolds(layout).map((h) => h.ids), [["base"]]);
 * dropHold(layout, "999999999-5", "base");
 * assert.deepEqual(readHolds(layout), []);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function dropHold(layout: StoreLayout, file: string, id: string): void {
  const text = readRecord(layout.holds(file));
  if (text === undefined) return;
  const ids = parse(text).ids;
  const i = ids.lastIndexOf(id);
  if (i < 0) return;
  ids.splice(i, 1);
  writeRecord(layout, file, headerOf(text), ids, true);
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
 * addHolds(layout, ["app", "base", "app"]);
 * dropHoldsOf(layout, ["app"]);
 * assert.deepEqual(readHolds(layout).map((h) => h.ids), [["base"]]);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function dropHoldsOf(layout: StoreLayout, ids: Iterable<string>): void {
  const drop = new Set(ids);
  if (drop.size === 0) return;
  for (const file of recordNames(layout)) {
    const text = readRecord(layout.holds(file));
    if (text === undefined) continue;
    const held = parse(text).ids;
    const kept = held.filter((id) => !drop.has(id));
    if (kept.length === held.length) continue;
    writeRecord(layout, file, headerOf(text), kept);
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
 * addHolds(layout, ["app"]);
 * dropAllHolds(layout);
 * assert.deepEqual(readHolds(layout), []);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function dropAllHolds(layout: StoreLayout): void {
  for (const file of recordNames(layout)) removeRunFile(layout.holds(file));
}

/**
 * Deletes the records of exited processes that hold nothing (caller holds
 * the store lock): a process that gave everything back leaves its empty
 * record in place (it would have written it again).
 *
 * @throws {StoreError} naming the file when it cannot be deleted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StoreLayout } from "../layout.ts";
 * import { readHolds, sweepEmptyHolds } from "./holds.ts";
 * const root = await Deno.makeTempDir();
 * await Deno.mkdir(`${root}/run/holds`, { recursive: true });
 * await Deno.writeTextFile(`${root}/run/holds/999999999-5`, "# boot - pidns -\n\nold\n");
 * const layout = new StoreLayout(root);
 * sweepEmptyHolds(layout);
 * assert.deepEqual(readHolds(layout), []);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export function sweepEmptyHolds(layout: StoreLayout): void {
  for (const h of readHolds(layout)) {
    if (h.exited && h.ids.length === 0) {
      writeRecord(layout, h.file, "", [], true);
    }
  }
}
