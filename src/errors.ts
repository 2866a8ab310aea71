/**
 * Typed errors. Every error layerfs throws on purpose is a {@link LayerfsError};
 * callers branch on the class (or on `name`), users read the message, which
 * says what went wrong and what to do about it.
 *
 * @module
 */

/**
 * Base class of every layerfs error.
 *
 * @example Branching on the error class
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerfsError, LayerNotFound } from "./errors.ts";
 * const e = new LayerNotFound("app");
 * assert.ok(e instanceof LayerNotFound && e instanceof LayerfsError);
 * assert.equal(e.name, "LayerNotFound");
 * assert.equal(e.exitCode, 1);
 * ```
 */
export class LayerfsError extends Error {
  /** Process exit code the CLI uses for this category (1 error, 2 usage). */
  readonly exitCode: number = 1;
  /** Builds the error; the message says what to do. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A layer id that is not `^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$` or ends in `-removing`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidLayerId } from "./errors.ts";
 * const e = new InvalidLayerId("../etc");
 * assert.equal(e.id, "../etc");
 * assert.match(e.message, /^Invalid layer id "\.\.\/etc"; use 1-128 characters/);
 * ```
 */
export class InvalidLayerId extends LayerfsError {
  /** The rejected id. */
  readonly id: string;
  /** Builds the error; the message says what to do. */
  constructor(id: string, why?: string) {
    super(
      `Invalid layer id ${JSON.stringify(id)}${why ? `: ${why}` : ""}; ` +
        `use 1-128 characters of A-Z a-z 0-9 _ . - starting with a letter or digit, ` +
        `not ending in "-removing"`,
    );
    this.id = id;
  }
}

/**
 * The named layer does not exist in the store.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerNotFound } from "./errors.ts";
 * assert.equal(
 *   new LayerNotFound("app").message,
 *   'Layer "app" does not exist; run "layerfs ls" to see the layers of this store',
 * );
 * ```
 */
export class LayerNotFound extends LayerfsError {
  /** The missing layer's id. */
  readonly id: string;
  /** Builds the error; the message says what to do. */
  constructor(id: string) {
    super(
      `Layer "${id}" does not exist; run "layerfs ls" to see the layers of this store`,
    );
    this.id = id;
  }
}

/**
 * A layer with that id exists already.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerExists } from "./errors.ts";
 * assert.equal(
 *   new LayerExists("base").message,
 *   'Layer "base" already exists; choose another id or remove it first with "layerfs rm base"',
 * );
 * ```
 */
export class LayerExists extends LayerfsError {
  /** The id that is taken. */
  readonly id: string;
  /** Builds the error; the message says what to do. */
  constructor(id: string) {
    super(
      `Layer "${id}" already exists; choose another id or remove it first with "layerfs rm ${id}"`,
    );
    this.id = id;
  }
}

/**
 * The parent named for a new layer does not exist: it never did, or it was
 * removed while the layer was being built (`removed`; nothing was
 * published).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ParentNotFound } from "./errors.ts";
 * assert.equal(
 *   new ParentNotFound("app", "base").message,
 *   'Cannot create layer "app": parent layer "base" does not exist; create the parent first',
 * );
 * assert.equal(
 *   new ParentNotFound("app", "base", true).message,
 *   'Cannot create layer "app": its parent layer "base" was removed while it was being built, and nothing was published; create the parent again and retry',
 * );
 * ```
 */
export class ParentNotFound extends LayerfsError {
  /** The layer being created. */
  readonly id: string;
  /** The missing parent. */
  readonly parent: string;
  /** The parent existed when the build began and was removed before its end. */
  readonly removed: boolean;
  /** Builds the error; the message says what to do. */
  constructor(id: string, parent: string, removed = false) {
    super(
      removed
        ? `Cannot create layer "${id}": its parent layer "${parent}" was removed while it was being built, and nothing was published; create the parent again and retry`
        : `Cannot create layer "${id}": parent layer "${parent}" does not exist; create the parent first`,
    );
    this.id = id;
    this.parent = parent;
    this.removed = removed;
  }
}

/**
 * The layer is mounted (by this or another process) and the operation needs it unused.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerInUse } from "./errors.ts";
 * assert.equal(
 *   new LayerInUse("app", 2).message,
 *   'Cannot remove layer "app": it is mounted 2 times; run "layerfs umount app" or pass --force',
 * );
 * assert.equal(
 *   new LayerInUse("app", 1, "commit").message,
 *   'Cannot commit layer "app": it is mounted 1 time; run "layerfs umount app" first',
 * );
 * ```
 */
export class LayerInUse extends LayerfsError {
  /** The busy layer. */
  readonly id: string;
  /** How many outstanding `get`s it has. */
  readonly mounts: number;
  /** Builds the error; `action` is what was refused; the message says what to do. */
  constructor(id: string, mounts: number, action = "remove") {
    super(
      `Cannot ${action} layer "${id}": it is mounted ${mounts} time${
        mounts === 1 ? "" : "s"
      }; run "layerfs umount ${id}"${
        action === "remove" ? " or pass --force" : " first"
      }`,
    );
    this.id = id;
    this.mounts = mounts;
  }
}

/**
 * The layer is the parent of other layers and cannot be removed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerHasChildren } from "./errors.ts";
 * assert.equal(
 *   new LayerHasChildren("base", ["app", "web"]).message,
 *   'Cannot remove layer "base": it is the parent of "app", "web"; remove those first or pass --force',
 * );
 * ```
 */
export class LayerHasChildren extends LayerfsError {
  /** The layer that was to be removed. */
  readonly id: string;
  /** Its direct children. */
  readonly children: string[];
  /** Builds the error; the message says what to do. */
  constructor(id: string, children: string[]) {
    super(
      `Cannot remove layer "${id}": it is the parent of ${
        children.map((c) => `"${c}"`).join(", ")
      }; remove those first or pass --force`,
    );
    this.id = id;
    this.children = children;
  }
}

/**
 * The layer belongs to an image: removing it would leave the image naming a
 * layer that is gone. `Store.remove` (and so `layerfs rm`) refuses it, with
 * `force` too, and so a forced removal whose descendants include one;
 * remove the image first instead (`rmi`, `removeImage`), which removes the
 * layers only it uses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerUsedByImage } from "./errors.ts";
 * assert.equal(
 *   new LayerUsedByImage("4e3a", [["app:1"]]).message,
 *   'Cannot remove layer "4e3a": image app:1 uses it; remove the image first with "layerfs rmi app:1"',
 * );
 * const two = new LayerUsedByImage("4e3a", [["app:1", "app:latest"], ["sha256:99"]], "base");
 * assert.equal(
 *   two.message,
 *   'Cannot remove layer "base" and its descendants: layer "4e3a" is used by images app:1 (also app:latest), sha256:99; ' +
 *     'remove the images first with "layerfs rmi app:1 app:latest sha256:99"',
 * );
 * assert.deepEqual(two.images, ["app:1", "sha256:99"]);
 * ```
 */
export class LayerUsedByImage extends LayerfsError {
  /** The layer an image uses. */
  readonly id: string;
  /** The layer that was to be removed: `id`, or an ancestor of it (a forced removal). */
  readonly requested: string;
  /** The first image that uses it: its first name, or its id when it has none. */
  readonly image: string;
  /** Every image that uses it, each by its first name, or its id when it has none. */
  readonly images: string[];
  /**
   * Builds the error; `images` holds each image's names (all of them:
   * `rmi` of the last one removes the image), or its `sha256:<id>` when it
   * has none; `requested` is the layer asked for, when it is not `id`.
   */
  constructor(id: string, images: string[][], requested = id) {
    const shown = images.map((n) =>
      n[0] + (n.length > 1 ? ` (also ${n.slice(1).join(", ")})` : "")
    ).join(", ");
    const one = images.length === 1;
    super(
      `Cannot remove layer "${requested}"${
        requested === id
          ? `: image${one ? "" : "s"} ${shown} ${one ? "uses" : "use"} it`
          : ` and its descendants: layer "${id}" is used by image${
            one ? "" : "s"
          } ${shown}`
      }; remove the image${one ? "" : "s"} first with "layerfs rmi ${
        images.flat().join(" ")
      }"`,
    );
    this.id = id;
    this.requested = requested;
    this.images = images.map((n) => n[0]);
    this.image = this.images[0];
  }
}

/**
 * The requested backend cannot work on this machine (kernel lacks it, no privileges, ...),
 * or the store was initialised with another backend.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BackendNotSupported } from "./errors.ts";
 * assert.equal(
 *   new BackendNotSupported("aufs", "the kernel has no aufs").message,
 *   'Backend "aufs" cannot be used: the kernel has no aufs',
 * );
 * ```
 */
export class BackendNotSupported extends LayerfsError {
  /** The backend asked for. */
  readonly backend: string;
  /** Builds the error; the message says what to do. */
  constructor(backend: string, why: string) {
    super(`Backend "${backend}" cannot be used: ${why}`);
    this.backend = backend;
  }
}

/**
 * The filesystem under the store root cannot host the backend (e.g. overlay on overlay).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IncompatibleBackingFs } from "./errors.ts";
 * const e = new IncompatibleBackingFs("overlay", "overlayfs", "/var/lib/layerfs");
 * assert.equal(
 *   e.message,
 *   'Backend "overlay" cannot run on overlayfs (store root /var/lib/layerfs); ' +
 *     "put the store on ext4, xfs, btrfs or tmpfs, or use --backend vfs",
 * );
 * ```
 */
export class IncompatibleBackingFs extends LayerfsError {
  /** The backend asked for. */
  readonly backend: string;
  /** The backing filesystem found. */
  readonly fs: string;
  /** Builds the error; the message says what to do. */
  constructor(backend: string, fs: string, root: string) {
    super(
      `Backend "${backend}" cannot run on ${fs} (store root ${root}); ` +
        `put the store on ext4, xfs, btrfs or tmpfs, or use --backend vfs`,
    );
    this.backend = backend;
    this.fs = fs;
  }
}

/**
 * A mount or unmount failed; carries the errno name and the operation.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MountError } from "./errors.ts";
 * const e = new MountError("fsconfig lowerdir+", "EINVAL", "/var/lib/layerfs/mnt/app", "check dmesg");
 * assert.equal(e.code, "EINVAL");
 * assert.equal(e.operation, "fsconfig lowerdir+");
 * assert.equal(
 *   e.message,
 *   "fsconfig lowerdir+ failed for /var/lib/layerfs/mnt/app: EINVAL; check dmesg",
 * );
 * ```
 */
export class MountError extends LayerfsError {
  /** errno name, e.g. "EPERM". */
  readonly code: string;
  /** The operation that failed, e.g. "fsmount". */
  readonly operation: string;
  /** The mount point concerned. */
  readonly target: string;
  /** Builds the error; the message says what to do. */
  constructor(
    operation: string,
    code: string,
    target: string,
    hint?: string,
    options?: ErrorOptions,
  ) {
    super(
      `${operation} failed for ${target}: ${code}${hint ? `; ${hint}` : ""}`,
      options,
    );
    this.code = code;
    this.operation = operation;
    this.target = target;
  }
}

/**
 * A tar archive is malformed, truncated, or holds an entry layerfs refuses
 * (unsafe name, unsupported type, over a size cap), or its compression
 * (gzip, zstd) is corrupt or cut short. Names the entry and, when known,
 * the input (a file path, "stdin").
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidArchive } from "./errors.ts";
 * assert.equal(
 *   new InvalidArchive("unexpected end of archive", "etc/passwd").message,
 *   'Invalid tar archive at entry "etc/passwd": unexpected end of archive',
 * );
 * const cut = new InvalidArchive("the zstd stream is truncated", undefined, {
 *   input: "layer.tar.zst",
 * });
 * assert.equal(cut.message, "Invalid archive layer.tar.zst: the zstd stream is truncated");
 * ```
 */
export class InvalidArchive extends LayerfsError {
  /** The entry concerned, when known. */
  readonly entry?: string;
  /** The input concerned (a file path, "stdin"), when known. */
  readonly input?: string;
  /** What is wrong and what to do, without the "Invalid archive ..." prefix. */
  readonly reason: string;
  /** Builds the error; `why` says what is wrong and what to do. */
  constructor(
    why: string,
    entry?: string,
    options?: ErrorOptions & { input?: string },
  ) {
    super(
      `Invalid ${
        options?.input === undefined
          ? "tar archive"
          : `archive ${options.input}`
      }${
        entry === undefined ? "" : ` at entry ${JSON.stringify(entry)}`
      }: ${why}`,
      options,
    );
    this.entry = entry;
    this.input = options?.input;
    this.reason = why;
  }

  /**
   * The same error naming `input` (kept when it names one already), for a
   * caller that knows where the bytes came from.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { InvalidArchive } from "./errors.ts";
   * const e = new InvalidArchive("bad header").withInput("stdin");
   * assert.equal(e.message, "Invalid archive stdin: bad header");
   * assert.equal(e.withInput("layer.tar").input, "stdin");
   * ```
   */
  withInput(input: string): InvalidArchive {
    if (this.input !== undefined) return this;
    return new InvalidArchive(this.reason, this.entry, { input, cause: this });
  }
}

/**
 * The store on disk is not usable as asked: wrong format version, another backend, corrupt metadata.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerfsError, StoreError } from "./errors.ts";
 * const e = new StoreError("layerfs.json is not valid JSON; run layerfs check");
 * assert.ok(e instanceof LayerfsError);
 * assert.equal(e.name, "StoreError");
 * assert.equal(e.message, "layerfs.json is not valid JSON; run layerfs check");
 * ```
 */
export class StoreError extends LayerfsError {}

/**
 * One layer of the store is damaged: its `layers/<id>` or `meta/<id>` record
 * cannot be read, it names a parent that is not a layer, or its content dir
 * `diff/<id>` (or a dir its backend keeps for it) is gone. Only that layer
 * (and what stacks on it) is affected: the store lists it as damaged,
 * `layerfs check` says what is wrong and what `--repair` can restore, and
 * `layerfs rm --force <id>` removes what is left of it. A {@link StoreError},
 * so code that handles a corrupt store still catches it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerDamaged, StoreError } from "./errors.ts";
 * const e = new LayerDamaged("app", "diff/app is missing (the layer's content is gone)");
 * assert.ok(e instanceof StoreError);
 * assert.equal(e.name, "LayerDamaged");
 * assert.equal(e.id, "app");
 * assert.equal(e.problem, "diff/app is missing (the layer's content is gone)");
 * assert.match(e.message, /^Layer "app" is damaged: diff\/app is missing/);
 * assert.match(e.message, /run "layerfs check"/);
 * ```
 */
export class LayerDamaged extends StoreError {
  /** The damaged layer. */
  readonly id: string;
  /** What is wrong, naming the file (never its content). */
  readonly problem: string;
  /**
   * Builds the error; the message says what to do.
   *
   * @param id The damaged layer.
   * @param problem What is wrong, naming the file (root-relative).
   * @param options `root`: the store, named in the message; `cause`.
   */
  constructor(
    id: string,
    problem: string,
    options?: ErrorOptions & { root?: string },
  ) {
    super(
      `Layer "${id}" is damaged: ${problem}${
        options?.root ? ` (store ${options.root})` : ""
      }; run "layerfs check" to see what --repair can restore, ` +
        `or remove the layer with "layerfs rm --force ${id}"`,
      options,
    );
    this.id = id;
    this.problem = problem;
  }
}

/**
 * The privileged helper refused or failed a request.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { HelperError } from "./errors.ts";
 * const e = new HelperError("store /srv/x is not in /etc/layerfs/helper.json");
 * assert.equal(e.name, "HelperError");
 * assert.equal(e.exitCode, 1);
 * ```
 */
export class HelperError extends LayerfsError {}

/**
 * Wrong usage of the CLI (unknown flag, missing argument). Exit code 2.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { UsageError } from "./errors.ts";
 * assert.equal(new UsageError("missing ID").exitCode, 2);
 * ```
 */
export class UsageError extends LayerfsError {
  /** Usage errors exit with 2. */
  override readonly exitCode: number = 2;
}

/**
 * `put` of a layer that has no outstanding `get`: nothing to release.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerNotMounted } from "./errors.ts";
 * assert.equal(new LayerNotMounted("app").message, 'Layer "app" is not mounted; nothing to release');
 * ```
 */
export class LayerNotMounted extends LayerfsError {
  /** The layer. */
  readonly id: string;
  /** Builds the error. */
  constructor(id: string) {
    super(`Layer "${id}" is not mounted; nothing to release`);
    this.id = id;
  }
}

/**
 * A read-write (container) layer was named as a parent: parents must be
 * immutable, so it has to be committed first.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ParentNotCommitted } from "./errors.ts";
 * assert.match(new ParentNotCommitted("app", "ctr").message, /commit it first/);
 * ```
 */
export class ParentNotCommitted extends LayerfsError {
  /** The layer that was to be created. */
  readonly id: string;
  /** The read-write layer named as its parent. */
  readonly parent: string;
  /** Builds the error; the message says what to do. */
  constructor(id: string, parent: string) {
    super(
      `Cannot create layer "${id}" on "${parent}": "${parent}" is a read-write layer and a ` +
        `parent must not change; commit it first ("layerfs commit ${parent} NEW") and use NEW as the parent`,
    );
    this.id = id;
    this.parent = parent;
  }
}

/**
 * `commit` of a layer that is not a read-write (container) layer.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerNotWritable } from "./errors.ts";
 * assert.match(new LayerNotWritable("base").message, /already read-only/);
 * ```
 */
export class LayerNotWritable extends LayerfsError {
  /** The layer. */
  readonly id: string;
  /** Builds the error; the message says what to do. */
  constructor(id: string) {
    super(
      `Cannot commit layer "${id}": it is already read-only (an image layer); ` +
        `commit only read-write layers ("layerfs create --rw", Store.createReadWrite)`,
    );
    this.id = id;
  }
}

/**
 * An image reference that is not `[host[:port]/]repo[:tag][@algo:hex]`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidReference } from "./errors.ts";
 * assert.match(new InvalidReference("Alpine", "the repository must be lowercase").message, /lowercase/);
 * ```
 */
export class InvalidReference extends LayerfsError {
  /** The rejected reference. */
  readonly reference: string;
  /** What is wrong with it (the message without the reference and the hint). */
  readonly why: string;
  /** Builds the error; `why` says what is wrong. */
  constructor(reference: string, why: string) {
    super(
      `Invalid image reference ${JSON.stringify(reference)}: ${why}; ` +
        `use [HOST[:PORT]/]REPO[:TAG][@sha256:HEX], e.g. docker.io/library/alpine:3.20`,
    );
    this.reference = reference;
    this.why = why;
  }
}

/**
 * A registry answered in a way layerfs cannot use: an unexpected status, a
 * malformed reply, a response over a size cap, a TLS failure, or still
 * failing after the bounded retries. Names the registry (and the reference
 * or blob when known); never carries credentials or tokens.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RegistryError } from "./errors.ts";
 * const e = new RegistryError("registry.example.com", "HTTP 500 after 4 tries; retry later");
 * assert.equal(e.registry, "registry.example.com");
 * ```
 */
export class RegistryError extends LayerfsError {
  /** The registry host concerned. */
  readonly registry: string;
  /** HTTP status of the last reply, when there was one. */
  readonly status?: number;
  /** The message without the registry's name: what went wrong, what to do. */
  readonly why: string;
  /** Builds the error; `why` says what went wrong and what to do. */
  constructor(
    registry: string,
    why: string,
    options?: ErrorOptions & { status?: number },
  ) {
    super(`Registry ${registry}: ${why}`, options);
    this.registry = registry;
    this.status = options?.status;
    this.why = why;
  }
}

/**
 * The registry answered 401: no credentials, or they were rejected.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RegistryUnauthorized } from "./errors.ts";
 * assert.match(new RegistryUnauthorized("ghcr.io", "ghcr.io/me/app:1", false).message, /layerfs login ghcr.io/);
 * ```
 */
export class RegistryUnauthorized extends RegistryError {
  /** The reference (or repository) asked for. */
  readonly reference: string;
  /** Builds the error; `hadCredentials` says whether credentials were sent. */
  constructor(
    registry: string,
    reference: string,
    hadCredentials: boolean,
    options?: ErrorOptions,
  ) {
    super(
      registry,
      `${reference}: authentication required (HTTP 401)${
        hadCredentials ? "; the stored credentials were rejected" : ""
      }; run "layerfs login ${registry}"`,
      { ...options, status: 401 },
    );
    this.reference = reference;
  }
}

/**
 * The registry answered 403: the credentials in use may not do this.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RegistryDenied } from "./errors.ts";
 * assert.match(new RegistryDenied("ghcr.io", "ghcr.io/me/app", "push").message, /may not push/);
 * ```
 */
export class RegistryDenied extends RegistryError {
  /** The reference (or repository) concerned. */
  readonly reference: string;
  /** Builds the error; `action` is "pull" or "push". */
  constructor(
    registry: string,
    reference: string,
    action: string,
    options?: ErrorOptions,
  ) {
    super(
      registry,
      `${reference}: access denied (HTTP 403): these credentials may not ${action} it; ` +
        `check the repository name, or run "layerfs login ${registry}" as a user who may`,
      { ...options, status: 403 },
    );
    this.reference = reference;
  }
}

/**
 * The registry answered 404 for a manifest, tag, blob or repository.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RegistryNotFound } from "./errors.ts";
 * assert.match(new RegistryNotFound("docker.io", "docker.io/library/alpine:nope").message, /check the name and tag/);
 * ```
 */
export class RegistryNotFound extends RegistryError {
  /** What was not found (a reference, or repo@digest of a blob). */
  readonly reference: string;
  /** Builds the error. */
  constructor(registry: string, reference: string, options?: ErrorOptions) {
    super(
      registry,
      `${reference} not found (HTTP 404); check the name and tag (private repositories ` +
        `may also answer 404 without credentials: "layerfs login ${registry}")`,
      { ...options, status: 404 },
    );
    this.reference = reference;
  }
}

/**
 * Content from a registry does not match its digest or size: the bytes are
 * refused (a corrupt or hostile registry or proxy).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DigestMismatch } from "./errors.ts";
 * const e = new DigestMismatch("docker.io/library/alpine@sha256:aa", "sha256:aa", "sha256:bb");
 * assert.equal(e.expected, "sha256:aa");
 * ```
 */
export class DigestMismatch extends LayerfsError {
  /** The content concerned. */
  readonly subject: string;
  /** Expected digest (or size, as "N bytes"). */
  readonly expected: string;
  /** What arrived. */
  readonly actual: string;
  /** Builds the error. */
  constructor(
    subject: string,
    expected: string,
    actual: string,
    options?: ErrorOptions,
  ) {
    super(
      `${subject}: content does not match: expected ${expected}, got ${actual}; ` +
        `the bytes were refused (retry; if it persists the registry or a proxy is corrupting data)`,
      options,
    );
    this.subject = subject;
    this.expected = expected;
    this.actual = actual;
  }
}

/**
 * Plain HTTP to a registry that is neither loopback nor listed as insecure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InsecureRegistry } from "./errors.ts";
 * assert.match(new InsecureRegistry("registry.lan:5000").message, /insecure/);
 * ```
 */
export class InsecureRegistry extends LayerfsError {
  /** The registry host. */
  readonly registry: string;
  /** Builds the error. */
  constructor(registry: string) {
    super(
      `Refusing plain HTTP to registry ${registry}: only loopback registries may be used without TLS; ` +
        `serve it over HTTPS (a private CA goes in /etc/containers/certs.d/${registry}/ca.crt) ` +
        `or list it as insecure`,
    );
    this.registry = registry;
  }
}

/**
 * The credentials for a registry live in a docker credential helper, which
 * layerfs does not run.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CredentialHelperUnsupported } from "./errors.ts";
 * assert.match(new CredentialHelperUnsupported("ghcr.io", "pass", "/root/.docker/config.json").message, /docker-credential-pass/);
 * ```
 */
export class CredentialHelperUnsupported extends LayerfsError {
  /** The registry host. */
  readonly registry: string;
  /** The helper program's name, `docker-credential-<name>`. */
  readonly helper: string;
  /** Builds the error. */
  constructor(registry: string, name: string, file: string) {
    const helper = `docker-credential-${name}`;
    super(
      `Credentials for ${registry} are kept by the credential helper ${helper} (${file}), ` +
        `which layerfs does not run; run "layerfs login ${registry}" to store them in ` +
        `an auth file layerfs reads`,
    );
    this.registry = registry;
    this.helper = helper;
  }
}

/**
 * An image (docker-archive or OCI layout) that cannot be loaded as it is:
 * malformed JSON, a hostile path or digest, a missing blob, or bytes whose
 * digest, size or DiffID differ from what the manifest and config say.
 * Nothing of the image is left in the store.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvalidImage } from "./errors.ts";
 * const e = new InvalidImage("app:1 layer 2", "its DiffID is sha256:aa, the config says sha256:bb");
 * assert.match(e.message, /^Cannot load image app:1 layer 2: its DiffID/);
 * ```
 */
export class InvalidImage extends LayerfsError {
  /** What was being read: the image, and the blob or file in it. */
  readonly subject: string;
  /** Builds the error; the message says what to do. */
  constructor(
    subject: string,
    problem: string,
    fix =
      "the archive is corrupt, truncated or was altered; make or fetch it again",
    options?: ErrorOptions,
  ) {
    super(`Cannot load image ${subject}: ${problem}; ${fix}`, options);
    this.subject = subject;
  }
}

/**
 * A foreign or non-distributable layer (Windows base layers): its bytes are
 * not in the archive, only a URL, and layerfs fetches nothing behind the
 * user's back.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ForeignLayer, InvalidImage } from "./errors.ts";
 * const e = new ForeignLayer("win:1 layer 1", "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip");
 * assert.ok(e instanceof InvalidImage);
 * ```
 */
export class ForeignLayer extends InvalidImage {
  /** The layer's media type. */
  readonly mediaType: string;
  /** Builds the error; the message says what to do. */
  constructor(subject: string, mediaType: string) {
    super(
      subject,
      `it is a foreign (non-distributable) layer (${mediaType}) whose content is not in the archive`,
      "layerfs loads only distributable layers; use an image built on a distributable base",
    );
    this.mediaType = mediaType;
  }
}

/**
 * No manifest of a multi-platform index matches the requested platform.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NoMatchingPlatform } from "./errors.ts";
 * assert.match(new NoMatchingPlatform("app:1", "linux/s390x", ["linux/amd64"]).message, /--platform/);
 * ```
 */
export class NoMatchingPlatform extends LayerfsError {
  /** The platform asked for, `os/arch[/variant]`. */
  readonly platform: string;
  /** Builds the error; the message says what to do. */
  constructor(subject: string, platform: string, available: string[]) {
    super(
      `Image ${subject} has no manifest for platform ${platform} (it has: ${
        available.join(", ") || "none"
      }); pass --platform with one of those`,
    );
    this.platform = platform;
  }
}

/**
 * No image in the store matches the reference (`name:tag`, `sha256:<id>`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ImageNotFound } from "./errors.ts";
 * assert.match(new ImageNotFound("app:1").message, /layerfs images/);
 * ```
 */
export class ImageNotFound extends LayerfsError {
  /** The reference looked up. */
  readonly ref: string;
  /** Builds the error; the message says what to do. */
  constructor(ref: string) {
    super(
      `No image "${ref}" in this store; run "layerfs images" to see the images`,
    );
    this.ref = ref;
  }
}

/**
 * The image cannot be removed: a layer that is no image's (a container made
 * with `create --rw --image`) sits on one of its layers. As docker and
 * podman refuse `rmi` of an image a container uses; remove those layers
 * first, or pass `force` (`rmi --force`: the image goes, its layers stay
 * while they are used).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ImageInUse } from "./errors.ts";
 * assert.equal(
 *   new ImageInUse("app:1", ["ctr"]).message,
 *   'Cannot remove image app:1: layer "ctr" is built on it; remove it first ("layerfs rm ctr") or pass --force to keep the layers it needs',
 * );
 * ```
 */
export class ImageInUse extends LayerfsError {
  /** The image as named. */
  readonly ref: string;
  /** The layers built on it that no image names. */
  readonly layers: string[];
  /** Builds the error; the message says what to do. */
  constructor(ref: string, layers: string[]) {
    const shown = layers.slice(0, 3).map((l) => `"${l}"`).join(", ") +
      (layers.length > 3 ? ` and ${layers.length - 3} more` : "");
    super(
      `Cannot remove image ${ref}: layer${
        layers.length === 1 ? "" : "s"
      } ${shown} ${layers.length === 1 ? "is" : "are"} built on it; remove ${
        layers.length === 1 ? "it" : "them"
      } first ("layerfs rm ${
        layers[0]
      }") or pass --force to keep the layers it needs`,
    );
    this.ref = ref;
    this.layers = layers;
  }
}

/**
 * A layer's files no longer match the tar-split record kept when it was
 * applied (a file changed, grew, shrank or is gone, or the record is
 * damaged), so the exact tar it came from cannot be rebuilt: export it
 * afresh (`Store.diff`) instead.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LayerNotExact } from "./errors.ts";
 * const e = new LayerNotExact("app", 'etc/hosts has 12 bytes, the record says 10');
 * assert.equal(e.layer, "app");
 * assert.match(e.message, /^Layer "app" cannot be exported exactly/);
 * ```
 */
export class LayerNotExact extends LayerfsError {
  /** The layer. */
  readonly layer: string;
  /** Builds the error; `why` names what differs. */
  constructor(layer: string, why: string, options?: ErrorOptions) {
    super(
      `Layer "${layer}" cannot be exported exactly: ${why}; ` +
        "it changed since it was applied: export it afresh (layerfs diff)",
      options,
    );
    this.layer = layer;
  }
}

/**
 * A command stopped by SIGINT (Ctrl-C) or SIGTERM: it removed its temps and
 * wrote no reference. Exit code 128 + the signal's number, as a shell
 * reports a process the signal killed: 130 for SIGINT, 143 for SIGTERM.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Interrupted } from "./errors.ts";
 * const e = new Interrupted("pull of alpine", "SIGINT");
 * assert.equal(e.message, "pull of alpine interrupted");
 * assert.equal(e.exitCode, 130);
 * ```
 */
export class Interrupted extends LayerfsError {
  /** The signal. */
  readonly signal: "SIGINT" | "SIGTERM";
  /** 130 (SIGINT) or 143 (SIGTERM). */
  override readonly exitCode: number;
  /** Builds the error; `what` names the work stopped ("pull of alpine"). */
  constructor(
    what: string,
    signal: "SIGINT" | "SIGTERM",
    options?: ErrorOptions,
  ) {
    super(`${what} interrupted`, options);
    this.signal = signal;
    this.exitCode = signal === "SIGINT" ? 130 : 143;
  }
}

/**
 * Deno refused to load one of layerfs's own modules, which it loads on first
 * use (so that a process does not pay at start-up for code it never runs):
 * the process may not read layerfs's source files (or, from a registry such
 * as JSR, import from its host). Grant the flag it names, or, in a program
 * that imports layerfs, import `src/preload.ts` (`@layerfs/layerfs/preload`)
 * to load everything at start.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PermissionRequired } from "./errors.ts";
 * const e = new PermissionRequired(
 *   new URL("file:///opt/my%20layerfs/src/store/open.ts"),
 *   new URL("file:///opt/my%20layerfs/"),
 * );
 * assert.equal(e.module, "/opt/my layerfs/src/store/open.ts");
 * assert.equal(e.flag, "'--allow-read=/opt/my layerfs'");
 * assert.match(e.message, /^layerfs loads \/opt\/my layerfs\/src\/store\/open\.ts on first use/);
 * ```
 */
export class PermissionRequired extends LayerfsError {
  /** The module that could not be loaded (a path, or a URL when remote). */
  readonly module: string;
  /** The Deno flag that allows it, quoted for a POSIX shell when it needs it. */
  readonly flag: string;
  /**
   * Builds the error for `module`, one of the modules of the layerfs copy
   * at `root` (file: or https: URLs).
   */
  constructor(module: URL, root: URL, options?: ErrorOptions) {
    const file = module.protocol === "file:";
    const where = file ? decodeURIComponent(module.pathname) : module.href;
    const flag = shellWord(
      file
        ? `--allow-read=${
          decodeURIComponent(root.pathname).replace(/(.)\/$/, "$1")
        }`
        : `--allow-import=${module.host}`,
    );
    super(
      `layerfs loads ${where} on first use and may not: run with ${flag} (or -A); a program that imports layerfs can instead import its preload.ts at start-up`,
      options,
    );
    this.module = where;
    this.flag = flag;
  }
}

/** `s` as one POSIX shell word: as is when safe, else single-quoted. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,.\/-]+$/.test(s)
    ? s
    : `'${s.replaceAll("'", `'\\''`)}'`;
}
