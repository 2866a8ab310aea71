/**
 * The conformance suite's harness (containerd's `makeTest`): every scenario
 * gets a fresh temp dir with a store opened by the backend's own `open`, and
 * a teardown that unmounts what the store mounted (`cleanup`) and then
 * asserts nothing is left mounted under the temp dir.
 *
 * Scenarios differ between backends only through what the backend declares
 * (its `capabilities`, `requirements`, `ownDirs`, `whiteoutFormat`), never
 * through its name. Privilege follows from the same: a backend whose views
 * are mounts needs root for its store scenarios; the others run as anyone,
 * except scenarios that need root for the fixture itself (they say why).
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Store } from "../../../mod.ts";
import {
  backendByName,
  type BackendName,
} from "../../../src/backends/registry.ts";
import type {
  Backend,
  BackendCapabilities,
} from "../../../src/backends/types.ts";
import { isRoot, privilegedRequired, tempDir } from "../../_privileged.ts";
import { mountsUnder } from "../_helpers.ts";

/** Opens (or initialises) a store of the backend under test at `root`. */
export type OpenFn = (root: string) => Promise<Store>;

/** What a store scenario gets. */
export interface StoreCase {
  /** The store under test, at `<tmp>/store`. */
  store: Store;
  /** Its canonical root. */
  root: string;
  /** The scenario's temp dir (the store root is inside it). */
  tmp: string;
  /** A free dir for source trees: `<tmp>/src`. */
  src: string;
  /** The backend, from the registry. */
  backend: Backend<BackendName>;
  /** Its declared capabilities. */
  caps: BackendCapabilities;
  /** Opens the same root again (as another process would); closed at teardown. */
  reopen(): Promise<Store>;
}

/** When a scenario applies and what it needs. */
export interface ScenarioOptions {
  /**
   * Why the scenario does not apply to this backend (from its declared
   * capabilities), or undefined when it does.
   */
  unless?: (b: Backend<BackendName>) => string | undefined;
  /** Why the scenario needs root even on a backend that mounts nothing. */
  root?: string;
}

/** One backend under test: registers its scenarios as Deno tests. */
export class Suite {
  /** The backend's name, as given to `backendSuite`. */
  readonly name: BackendName;
  /** The backend, from the registry. */
  readonly backend: Backend<BackendName>;
  readonly #open: OpenFn;
  /** Why this host cannot run the backend's stores at all, or undefined. */
  readonly #unrunnable: string | undefined;

  constructor(name: BackendName, open: OpenFn) {
    this.name = name;
    this.backend = backendByName(name);
    this.#open = open;
    this.#unrunnable = hostLacks(this.backend);
  }

  /** Declared capabilities of the backend under test. */
  get caps(): BackendCapabilities {
    return this.backend.capabilities;
  }

  /** Whether store scenarios run here (the host has what the backend requires). */
  get runnable(): string | undefined {
    return this.#unrunnable;
  }

  /** A pure scenario (plans, no store, no privileges): runs everywhere. */
  plan(title: string, fn: (b: Backend<BackendName>) => void): void {
    Deno.test(`suite (${this.name}) plan: ${title}`, () => fn(this.backend));
  }

  /** A scenario on a real store of this backend. */
  store(
    title: string,
    opts: ScenarioOptions,
    fn: (c: StoreCase) => Promise<void>,
  ): void;
  store(title: string, fn: (c: StoreCase) => Promise<void>): void;
  store(
    title: string,
    a: ScenarioOptions | ((c: StoreCase) => Promise<void>),
    b?: (c: StoreCase) => Promise<void>,
  ): void {
    const opts = typeof a === "function" ? {} : a;
    const fn = typeof a === "function" ? a : b!;
    const name = `suite (${this.name}): ${title}`;
    if (this.#unrunnable) return; // one ignored test says why (backendSuite)
    const notApplicable = opts.unless?.(this.backend);
    if (notApplicable) {
      console.warn(`skipping "${name}": ${notApplicable}`);
      Deno.test({ name, ignore: true, fn: () => {} });
      return;
    }
    const needsRoot = this.caps.mounts
      ? "real mounts: the backend's views are mounts"
      : opts.root;
    if (needsRoot && !isRoot) {
      if (privilegedRequired) {
        Deno.test(name, () => {
          throw new Error(
            `"${name}" needs root (${needsRoot}) and LAYERFS_REQUIRE_PRIVILEGED=1 forbids skipping it`,
          );
        });
      } else {
        console.warn(`skipping "${name}": needs root (${needsRoot})`);
        Deno.test({ name, ignore: true, fn: () => {} });
      }
      return;
    }
    Deno.test({
      name,
      // libc is loaded (Deno.dlopen) on first use and kept for the process:
      // the resource sanitizer would call that a leak. Ops stay sanitized, so
      // a child process or timer a scenario leaves behind fails it.
      sanitizeResources: false,
      fn: () => this.#run(fn),
    });
  }

  async #run(fn: (c: StoreCase) => Promise<void>): Promise<void> {
    await using tmp = await tempDir(`layerfs-suite-${this.name}-`);
    const store = await this.#open(`${tmp.path}/store`);
    const others: Store[] = [];
    try {
      assert.equal(store.backend, this.name);
      await fn({
        store,
        root: store.root,
        tmp: tmp.path,
        src: `${tmp.path}/src`,
        backend: this.backend,
        caps: this.caps,
        reopen: async () => {
          const s = await this.#open(store.root);
          others.push(s);
          return s;
        },
      });
    } finally {
      await store.cleanup().catch(() => {});
      store.close();
      for (const s of others) s.close();
    }
    // Teardown of every scenario: nothing the store made stays mounted.
    assert.deepEqual(await mountsUnder(tmp.path), []);
  }
}

/** Why this host cannot run stores of `backend` (its declared requirements), or undefined. */
function hostLacks(backend: Backend): string | undefined {
  const fs = backend.requirements.kernelFs;
  if (fs === undefined) return undefined;
  const known = Deno.readTextFileSync("/proc/filesystems").split("\n")
    .map((l) => l.split("\t").pop()!.trim());
  return known.includes(fs)
    ? undefined
    : `the kernel has no ${fs} filesystem (the backend requires it)`;
}

/** Names of the entries of `dir`, sorted. */
export async function entries(dir: string): Promise<string[]> {
  return (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
}

/** The store's own dirs plus the backend's, as they exist under every root of it. */
export function storeDirs(b: Backend): string[] {
  return ["layers", "diff", "mnt", "meta", "staging", ...b.ownDirs];
}

/** Asserts that no layer-holding dir of the store has an entry besides `ids`. */
export async function assertOnly(
  c: StoreCase,
  ids: string[],
): Promise<void> {
  const want = [...ids].sort();
  for (const d of ["layers", "diff", "meta"]) {
    assert.deepEqual(await entries(`${c.root}/${d}`), want, d);
  }
  assert.deepEqual(
    await entries(`${c.root}/mnt`),
    c.caps.mounts ? want : [],
    "mnt",
  );
  assert.deepEqual(await entries(`${c.root}/staging`), [], "staging");
}

/** Regex for the error a write through a read-only mount gives. */
export const EROFS = /Read-only file system|EROFS|os error 30/;
