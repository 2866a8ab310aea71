/**
 * Internal: gzip decoding with Intel ISA-L's inflate (`libisal.so.2`, through
 * FFI), about twice as fast as `node:zlib` here (0.21 s against 0.45 s of
 * CPU for a 152 MiB layer set; GNU gzip takes 0.88 s), so a pull or load
 * that inflates on two cores is no longer bound by one layer's inflate.
 * Optional, as containerd's `unpigz`: without the library (Debian and
 * Ubuntu package `libisal2`, Fedora `isa-l`), or with `LAYERFS_GZIP=zlib`,
 * {@link isalGunzipAvailable} says no and `node:zlib` decodes.
 *
 * The checks are the ones `decompress.ts` makes with `node:zlib`: each
 * member's header is parsed here (the reserved flag bits refused, FHCRC
 * checked), ISA-L inflates the deflate data and checks the trailer's CRC-32
 * and ISIZE (`ISAL_GZIP_NO_HDR_VER`); concatenated members are read; a
 * stream that ends inside a member is truncated; bytes after the last
 * member that do not start another are counted and refused at the end.
 *
 * `struct inflate_state` is allocated here: its layout (the offsets below)
 * is the same in every ISA-L release from 2.24 (2018) to 2.32 (2026), and
 * the binding decodes a known member once before it is trusted. Pointers
 * into JS buffers are handed to the library only for the synchronous call
 * that uses them.
 *
 * @module
 */

import { nodeZlib } from "../../_node.ts";
import { isalLoader } from "./_isal_lib.ts";

/** `sizeof(struct inflate_state)`, ISA-L 2.24-2.32 (checked on x86-64 with each release's header). */
const STATE_SIZE = 87368;
/** Field offsets in `struct inflate_state`. */
const Off = {
  nextOut: 0,
  availOut: 8,
  nextIn: 16,
  availIn: 32,
  blockState: 21160,
  crcFlag: 21172,
  crc: 21176,
} as const;
/** `ISAL_BLOCK_FINISH`: the member's deflate data and trailer are done. */
const BLOCK_FINISH = 5;
/** `ISAL_GZIP_NO_HDR_VER`: raw deflate, then a gzip trailer that is checked. */
const GZIP_NO_HDR_VER = 6;
/** `ISAL_INCORRECT_CHECKSUM`. */
const INCORRECT_CHECKSUM = -6;
/** What ISA-L's other negative return codes mean. */
const INFLATE_ERRORS: Record<number, string> = {
  [-1]: "invalid deflate block",
  [-2]: "invalid deflate symbol",
  [-3]: "invalid lookback distance",
};

const SYMBOLS = {
  isal_inflate_init: { parameters: ["buffer"], result: "void" },
  isal_inflate_reset: { parameters: ["buffer"], result: "void" },
  isal_inflate: { parameters: ["buffer"], result: "i32" },
} as const;

type Isal = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** The library, or `null` when it is missing, disabled or fails its self-test. */
const isal = isalLoader(SYMBOLS, selfTest);

/**
 * Whether gzip is decoded by ISA-L: `libisal.so.2` loads, `LAYERFS_GZIP`
 * is not `zlib`, and a known member decodes to its known bytes.
 */
export function isalGunzipAvailable(): boolean {
  return !forcedOff && isal() !== null;
}

let forcedOff = false;

/**
 * For tests of both decoders in one process: `true` makes
 * {@link isalGunzipAvailable} say no (node:zlib decodes), `false` undoes it.
 */
export function disableIsalForTests(off: boolean): void {
  forcedOff = off;
}

/**
 * `"layerfs isa-l self-test "` 40 times, gzipped by zlib at level 6 (one
 * fixed-Huffman block of back-references). A constant, not a call to
 * `node:zlib`: loading it would cost the process Deno's Node compatibility
 * layer (20-30 ms), which an ISA-L inflate does not otherwise need.
 */
const SELF_TEST_MEMBER = Uint8Array.from(
  ("1f8b0800000000000003cb49ac4c2d4a2b56c82c4ed4cd51284ecd49d32d492d2e51c8" +
    "19151f151f151ff4e200f1aad2b0c0030000").match(/../g)!,
  (h) => parseInt(h, 16),
);

/** Decodes a known gzip member and compares. */
function selfTest(lib: Isal): boolean {
  const want = new TextEncoder().encode("layerfs isa-l self-test ".repeat(40));
  const gz = SELF_TEST_MEMBER;
  const out: Uint8Array[] = [];
  try {
    const d = new IsalGunzip((c) => out.push(c.slice()), lib);
    d.push(gz);
    d.end();
  } catch {
    return false;
  }
  const got = out.length === 1 ? out[0] : new Uint8Array(0);
  return got.length === want.length && got.every((b, i) => b === want[i]);
}

/** The kinds of {@link GzipError}. */
export type GzipFault =
  | "truncated"
  | "crc"
  | "isize"
  | "not-a-member"
  | "trailing"
  | "corrupt";

/** What is wrong with a gzip stream (mapped to `InvalidArchive` by the caller). */
export class GzipError extends Error {
  /**
   * @param kind What failed.
   * @param detail More, for `corrupt`.
   * @param bytes For `trailing`: how many bytes follow the last member.
   * @param offset For `trailing`: where they start.
   */
  constructor(
    readonly kind: GzipFault,
    detail: string = kind,
    readonly bytes = 0,
    readonly offset = 0,
  ) {
    super(detail);
    this.name = "GzipError";
  }
}

/** Output buffer size: fewer, fuller chunks for the tar reader. */
const OUT = 256 << 10;

const enum Phase {
  /** Reading a member header (`#hdr` collects it). */
  Header,
  /** Inflating a member's deflate data and trailer. */
  Data,
  /** Between members: the next byte decides. */
  Between,
  /** Counting bytes after the last member. */
  Trailing,
}

/** The parts of a member header, in order (RFC 1952). */
const enum Hdr {
  Fixed,
  ExtraLen,
  Extra,
  Name,
  Comment,
  Hcrc,
}

/** Header flag bits (RFC 1952). */
const FHCRC = 2, FEXTRA = 4, FNAME = 8, FCOMMENT = 16, FRESERVED = 0xe0;

/**
 * A push decoder: {@link push} compressed chunks, get uncompressed chunks
 * through `emit` (each a fresh buffer the caller keeps), then {@link end}.
 * Errors are {@link GzipError}s, thrown from `push` or `end`.
 */
export class IsalGunzip {
  readonly #lib: Isal;
  readonly #emit: (chunk: Uint8Array) => void;
  readonly #mem = new Uint8Array(STATE_SIZE + 64);
  readonly #state: Uint8Array;
  readonly #v: DataView;
  #out = new Uint8Array(OUT);
  #outAt = 0;
  #phase = Phase.Header;
  /** Where in a member header the parser is, and what it kept of it. */
  #hstep = Hdr.Fixed;
  readonly #fixed = new Uint8Array(10);
  readonly #two = new Uint8Array(2);
  #fill = 0;
  #flags = 0;
  #extraLeft = 0;
  #hcrc = 0;
  /** Input bytes consumed in all (for error offsets). */
  #used = 0;
  #trailing = 0;
  #trailingAt = 0;
  /** The last 8 bytes ISA-L consumed: the trailer, when it is refused. */
  readonly #tail = new Uint8Array(8);
  #tailFill = 0;

  /**
   * @param emit Called with each uncompressed chunk.
   * @param lib The bound library (its self-test passes it; else the loaded one).
   */
  constructor(emit: (chunk: Uint8Array) => void, lib: Isal | null = isal()) {
    if (!lib) throw new Error("internal: ISA-L is not available");
    this.#lib = lib;
    this.#emit = emit;
    // 64-byte aligned, as the library's own allocations are.
    const at = Number(
      Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#mem)) & 63n,
    );
    this.#state = this.#mem.subarray(
      (64 - at) & 63,
      (64 - at & 63) + STATE_SIZE,
    );
    this.#v = new DataView(
      this.#state.buffer,
      this.#state.byteOffset,
      STATE_SIZE,
    );
    lib.isal_inflate_init(this.#state);
    this.#v.setUint32(Off.crcFlag, GZIP_NO_HDR_VER, true);
  }

  /** Decodes `chunk` (not kept after the call). */
  push(chunk: Uint8Array): void {
    let i = 0;
    while (i < chunk.length) {
      switch (this.#phase) {
        case Phase.Header:
          i = this.#header(chunk, i);
          break;
        case Phase.Data:
          i = this.#inflate(chunk, i);
          break;
        case Phase.Between:
          if (chunk[i] === 0x1f) {
            this.#phase = Phase.Header;
            this.#lib.isal_inflate_reset(this.#state);
          } else {
            this.#phase = Phase.Trailing;
            this.#trailingAt = this.#used;
          }
          break;
        case Phase.Trailing:
          this.#trailing += chunk.length - i;
          this.#used += chunk.length - i;
          i = chunk.length;
          break;
      }
    }
    this.#flushIf(OUT >> 1);
  }

  /** Ends the input: emits what is left, or throws what is wrong. */
  end(): void {
    // What ISA-L may still hold of the member (its input was all taken).
    if (this.#phase === Phase.Data) this.#inflate(new Uint8Array(1), 1, true);
    if (this.#phase === Phase.Header || this.#phase === Phase.Data) {
      throw new GzipError("truncated");
    }
    if (this.#phase === Phase.Trailing) {
      throw new GzipError(
        "trailing",
        "trailing data",
        this.#trailing,
        this.#trailingAt,
      );
    }
    this.#flushIf(1);
  }

  /** Emits the pending output when it holds at least `min` bytes. */
  #flushIf(min: number): void {
    if (this.#outAt < min) return;
    this.#emit(this.#out.subarray(0, this.#outAt));
    this.#out = new Uint8Array(OUT);
    this.#outAt = 0;
  }

  /**
   * Parses header bytes from `chunk[i]`; returns where it stopped. Each
   * byte is looked at once (a name of any length costs its length), and
   * nothing of the optional fields is kept but the running FHCRC.
   */
  #header(chunk: Uint8Array, i: number): number {
    const n = chunk.length;
    while (i < n && this.#phase === Phase.Header) {
      const start = i;
      switch (this.#hstep) {
        case Hdr.Fixed: {
          const f = this.#fixed;
          while (i < n && this.#fill < 10) {
            const b = chunk[i++];
            f[this.#fill++] = b;
            if (this.#fill === 2 && b !== 0x8b) {
              throw new GzipError("not-a-member");
            }
            if (this.#fill === 3 && b !== 8) {
              throw new GzipError("corrupt", "unknown compression method");
            }
            if (this.#fill === 4 && (b & FRESERVED) !== 0) {
              throw new GzipError("corrupt", "unknown header flags set");
            }
          }
          this.#used += i - start;
          if (this.#fill === 10) {
            this.#flags = f[3];
            this.#hcrc = this.#flags & FHCRC ? nodeZlib().crc32(f) : 0;
            this.#next(Hdr.Fixed);
          }
          break;
        }
        case Hdr.ExtraLen:
          while (i < n && this.#fill < 2) this.#two[this.#fill++] = chunk[i++];
          this.#took(chunk, start, i);
          if (this.#fill === 2) {
            this.#extraLeft = this.#two[0] | (this.#two[1] << 8);
            if (this.#extraLeft > 0) this.#hstep = Hdr.Extra;
            else this.#next(Hdr.Extra);
          }
          break;
        case Hdr.Extra: {
          const take = Math.min(this.#extraLeft, n - i);
          i += take;
          this.#extraLeft -= take;
          this.#took(chunk, start, i);
          if (this.#extraLeft === 0) this.#next(Hdr.Extra);
          break;
        }
        case Hdr.Name:
        case Hdr.Comment: {
          const z = chunk.indexOf(0, i);
          i = z < 0 ? n : z + 1;
          this.#took(chunk, start, i);
          if (z >= 0) this.#next(this.#hstep);
          break;
        }
        case Hdr.Hcrc: {
          while (i < n && this.#fill < 2) this.#two[this.#fill++] = chunk[i++];
          this.#used += i - start;
          if (this.#fill === 2) {
            const want = this.#two[0] | (this.#two[1] << 8);
            if ((this.#hcrc & 0xffff) !== want) {
              throw new GzipError("corrupt", "header crc mismatch");
            }
            this.#next(Hdr.Hcrc);
          }
          break;
        }
      }
    }
    return i;
  }

  /** Counts an optional field's bytes `chunk[start, end)`, into the FHCRC when there is one. */
  #took(chunk: Uint8Array, start: number, end: number): void {
    this.#used += end - start;
    if (this.#flags & FHCRC) {
      this.#hcrc = nodeZlib().crc32(chunk.subarray(start, end), this.#hcrc);
    }
  }

  /** Moves past header part `done` to the next one its flags have, or to the data. */
  #next(done: Hdr): void {
    this.#fill = 0;
    const parts: [Hdr, number][] = [
      [Hdr.ExtraLen, FEXTRA],
      [Hdr.Name, FNAME],
      [Hdr.Comment, FCOMMENT],
      [Hdr.Hcrc, FHCRC],
    ];
    // Extra belongs to ExtraLen's place in the order.
    const after = done === Hdr.Extra ? Hdr.ExtraLen : done;
    for (const [part, flag] of parts) {
      if (part > after && (this.#flags & flag) !== 0) {
        this.#hstep = part;
        return;
      }
    }
    this.#hstep = Hdr.Fixed;
    this.#phase = Phase.Data;
  }

  /** Inflates from `chunk[i]`; returns where it stopped. */
  #inflate(chunk: Uint8Array, i: number, drain = false): number {
    const v = this.#v;
    const input = chunk.subarray(i);
    v.setBigUint64(
      Off.nextIn,
      Deno.UnsafePointer.value(Deno.UnsafePointer.of(input)),
      true,
    );
    v.setUint32(Off.availIn, input.length, true);
    let left = input.length;
    for (;;) {
      if (this.#outAt === OUT) this.#flushIf(OUT);
      const out = this.#out.subarray(this.#outAt);
      v.setBigUint64(
        Off.nextOut,
        Deno.UnsafePointer.value(Deno.UnsafePointer.of(out)),
        true,
      );
      v.setUint32(Off.availOut, out.length, true);
      const rc = this.#lib.isal_inflate(this.#state);
      const was = left;
      left = v.getUint32(Off.availIn, true);
      const made = out.length - v.getUint32(Off.availOut, true);
      this.#outAt += made;
      const used = input.length - left;
      if (rc < 0) {
        this.#consumed(input.subarray(0, used));
        throw this.#failure(rc);
      }
      if (v.getUint32(Off.blockState, true) === BLOCK_FINISH) {
        this.#consumed(input.subarray(0, used));
        this.#phase = Phase.Between;
        return i + used;
      }
      if (left === 0 && !(drain && made > 0)) {
        this.#consumed(input);
        return chunk.length;
      }
      if (was === left && made === 0) {
        // Room on both sides and nothing done: refuse rather than spin.
        throw new GzipError("corrupt", `inflate made no progress (${rc})`);
      }
    }
  }

  /** Counts bytes ISA-L took, keeping the last 8 (the trailer, if it is refused). */
  #consumed(b: Uint8Array): void {
    this.#used += b.length;
    if (b.length >= 8) {
      this.#tail.set(b.subarray(b.length - 8));
      this.#tailFill = 8;
      return;
    }
    const keep = Math.min(this.#tailFill, 8 - b.length);
    this.#tail.copyWithin(0, this.#tailFill - keep, this.#tailFill);
    this.#tail.set(b, keep);
    this.#tailFill = keep + b.length;
  }

  /** The error for ISA-L's return code `rc`. */
  #failure(rc: number): GzipError {
    if (rc !== INCORRECT_CHECKSUM) {
      const what = INFLATE_ERRORS[rc] ?? `ISA-L error ${rc}`;
      return new GzipError("corrupt", what);
    }
    // The trailer was refused: its CRC-32 or its ISIZE.
    const t = new DataView(this.#tail.buffer);
    const crc = this.#v.getUint32(Off.crc, true);
    return this.#tailFill === 8 && t.getUint32(0, true) === crc
      ? new GzipError("isize")
      : new GzipError("crc");
  }
}
