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
 * import { LayerfsError, LayerNotFound } from "./errors.ts";
 * try {
 *   throw new LayerNotFound("app");
 * } catch (e) {
 *   if (e instanceof LayerNotFound) console.log("no such layer");
 *   else if (e instanceof LayerfsError) console.log(e.message);
 * }
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
 * import { InvalidLayerId } from "./errors.ts";
 * const e = new InvalidLayerId("../etc");
 * console.log(e.message);
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
 * import { LayerNotFound } from "./errors.ts";
 * console.log(new LayerNotFound("app").message);
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
 * import { LayerExists } from "./errors.ts";
 * console.log(new LayerExists("base").message);
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
 * The parent named for a new layer does not exist.
 *
 * @example
 * ```ts
 * import { ParentNotFound } from "./errors.ts";
 * console.log(new ParentNotFound("app", "base").message);
 * ```
 */
export class ParentNotFound extends LayerfsError {
  /** The layer being created. */
  readonly id: string;
  /** The missing parent. */
  readonly parent: string;
  /** Builds the error; the message says what to do. */
  constructor(id: string, parent: string) {
    super(
      `Cannot create layer "${id}": parent layer "${parent}" does not exist; create the parent first`,
    );
    this.id = id;
    this.parent = parent;
  }
}

/**
 * The layer is mounted (by this or another process) and the operation needs it unused.
 *
 * @example
 * ```ts
 * import { LayerInUse } from "./errors.ts";
 * console.log(new LayerInUse("app", 2).message);
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
 * import { LayerHasChildren } from "./errors.ts";
 * console.log(new LayerHasChildren("base", ["app"]).message);
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
 * The requested backend cannot work on this machine (kernel lacks it, no privileges, ...),
 * or the store was initialised with another backend.
 *
 * @example
 * ```ts
 * import { BackendNotSupported } from "./errors.ts";
 * console.log(new BackendNotSupported("aufs", "the kernel has no aufs").message);
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
 * import { IncompatibleBackingFs } from "./errors.ts";
 * console.log(new IncompatibleBackingFs("overlay", "overlayfs", "/var/lib/layerfs").message);
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
 * import { MountError } from "./errors.ts";
 * const e = new MountError("fsconfig lowerdir+", "EINVAL", "/var/lib/layerfs/mnt/app", "check dmesg");
 * console.log(e.code, e.operation);
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
 * (unsafe name, unsupported type, over a size cap). Names the entry.
 *
 * @example
 * ```ts
 * import { InvalidArchive } from "./errors.ts";
 * console.log(new InvalidArchive("unexpected end of archive", "etc/passwd").message);
 * ```
 */
export class InvalidArchive extends LayerfsError {
  /** The entry concerned, when known. */
  readonly entry?: string;
  /** Builds the error; the message says what to do. */
  constructor(why: string, entry?: string, options?: ErrorOptions) {
    super(
      `Invalid tar archive${
        entry === undefined ? "" : ` at entry ${JSON.stringify(entry)}`
      }: ${why}`,
      options,
    );
    this.entry = entry;
  }
}

/**
 * The store on disk is not usable as asked: wrong format version, another backend, corrupt metadata.
 *
 * @example
 * ```ts
 * import { StoreError } from "./errors.ts";
 * console.log(new StoreError("layerfs.json is not valid JSON; run layerfs check").message);
 * ```
 */
export class StoreError extends LayerfsError {}

/**
 * The privileged helper refused or failed a request.
 *
 * @example
 * ```ts
 * import { HelperError } from "./errors.ts";
 * console.log(new HelperError("store /srv/x is not in /etc/layerfs/helper.json").message);
 * ```
 */
export class HelperError extends LayerfsError {}

/**
 * Wrong usage of the CLI (unknown flag, missing argument). Exit code 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./errors.ts";
 * console.log(new UsageError("missing ID").exitCode);
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
        `commit only layers made with createReadWrite / "layerfs create --rw"`,
    );
    this.id = id;
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
