/**
 * src/archive/compress/_gunzip_isal.ts: ISA-L's gzip decoding against
 * node:zlib's, on crafted headers (FEXTRA, FCOMMENT, FHCRC, reserved flags,
 * another method), member boundaries at every chunk size, random data in
 * random chunks, and the `LAYERFS_GZIP=zlib` switch.
 */
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { decompressStream, InvalidArchive } from "../../../mod.ts";
import { concat, sameBytes } from "../../_bytes.ts";
import { gzipDecoders, isalHere } from "./_decoders.ts";
import { prng } from "../../../bench/_util.ts";

const ISAL = isalHere();

/** `bytes` in chunks of the sizes `sizes` gives, in turn. */
function chunks(
  bytes: Uint8Array,
  sizes: () => number,
): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      const n = Math.max(1, sizes());
      c.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}

/** What each decoder makes of `bytes` in `size`-byte chunks: the bytes or the error line. */
async function outcomes(bytes: Uint8Array, size = 1 << 16) {
  const got: { name: string; out?: Uint8Array; error?: string }[] = [];
  for (const d of gzipDecoders()) {
    using _ = d.use();
    try {
      const s = decompressStream(chunks(bytes, () => size), "gzip", {
        name: "in",
      });
      got.push({ name: d.name, out: await new Response(s).bytes() });
    } catch (e) {
      assert.ok(e instanceof InvalidArchive, `${d.name}: ${e}`);
      got.push({ name: d.name, error: e.message });
    }
  }
  return got;
}

const text = new TextEncoder().encode("layerfs gzip parity\n".repeat(300));
const member = new Uint8Array(zlib.gzipSync(text));
const header = (flags: number, fields: number[]) =>
  new Uint8Array([0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3, ...fields]);
const deflated = member.subarray(10);
const withHcrc = (() => {
  const h = header(2 | 8, [...new TextEncoder().encode("t.tar"), 0]);
  const c = zlib.crc32(h) & 0xffff;
  return concat([h, new Uint8Array([c & 255, c >> 8]), deflated]);
})();

Deno.test({
  name:
    "ISA-L gzip: crafted headers and endings give node:zlib's bytes or its refusal",
  ignore: !ISAL,
  fn: async () => {
    const cases: [string, Uint8Array, RegExp | number][] = [
      ["plain", member, text.length],
      ["FEXTRA", concat([header(4, [3, 0, 1, 2, 3]), deflated]), text.length],
      ["FCOMMENT", concat([header(16, [65, 66, 0]), deflated]), text.length],
      ["FNAME + FHCRC", withHcrc, text.length],
      [
        "a wrong FHCRC",
        concat([header(2, [0, 0]), deflated]),
        /gzip stream is corrupt \(header crc mismatch\)/,
      ],
      [
        "a reserved flag",
        concat([header(0x20, []), deflated]),
        /unknown header flags set/,
      ],
      [
        "method 7",
        concat([new Uint8Array([0x1f, 0x8b, 7]), member.subarray(3)]),
        /unknown compression method/,
      ],
      ["no bytes", new Uint8Array(0), /truncated/],
      ["a header only", header(0, []), /truncated/],
      [
        "a lone 0x1f after",
        concat([member, new Uint8Array([0x1f])]),
        /truncated/,
      ],
      [
        "0x1f 0x00 after",
        concat([member, new Uint8Array([0x1f, 0, 1, 2])]),
        /not another gzip member/,
      ],
      [
        "a bad block",
        concat([header(0, []), new Uint8Array([0xff, 0xff, 0xff, 0, 0, 0])]),
        /gzip stream is corrupt/,
      ],
      ["two members", concat([member, withHcrc]), 2 * text.length],
      // Each header byte is looked at once: a long name costs its length.
      [
        "a 2 MiB FNAME",
        concat([header(8, [...new Uint8Array(2 << 20).fill(65), 0]), deflated]),
        text.length,
      ],
    ];
    for (const [what, bytes, want] of cases) {
      for (const size of bytes.length > 1e6 ? [1 << 16] : [1, 5, 1 << 16]) {
        const [isal, node] = await outcomes(bytes, size);
        assert.equal(isal.name, "ISA-L");
        if (typeof want === "number") {
          assert.equal(isal.error, undefined, `${what}/${size}`);
          assert.equal(isal.out!.length, want, `${what}/${size}`);
          assert.ok(sameBytes(isal.out!, node.out!), `${what}/${size}`);
        } else {
          assert.match(isal.error ?? "accepted", want, `${what}/${size}`);
          // node:zlib names a bad block its own way; the rest word for word.
          if (what !== "a bad block") {
            assert.equal(isal.error, node.error, `${what}/${size}`);
          } else assert.match(node.error ?? "accepted", want);
        }
      }
    }
  },
});

Deno.test({
  name:
    "ISA-L gzip: random data, levels and member counts in random chunks equal node:zlib's",
  ignore: !ISAL,
  fn: async () => {
    const rand = prng(7);
    for (let round = 0; round < 12; round++) {
      const members: Uint8Array[] = [];
      const plain: Uint8Array[] = [];
      for (let m = 0; m < 1 + (round % 3); m++) {
        const n = Math.floor(rand() * (round < 6 ? 5000 : 3_000_000));
        const b = new Uint8Array(n);
        const entropy = rand() < 0.5 ? 4 : 256;
        for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * entropy);
        plain.push(b);
        members.push(
          new Uint8Array(zlib.gzipSync(b, { level: 1 + (round % 9) })),
        );
      }
      const bytes = concat(members);
      const want = concat(plain);
      for (const d of gzipDecoders()) {
        using _ = d.use();
        const max = round % 2 ? 97 : 200_000;
        const s = decompressStream(
          chunks(bytes, () => Math.floor(rand() * max)),
          "gzip",
        );
        const got = await new Response(s).bytes();
        assert.ok(sameBytes(got, want), `${d.name} round ${round}`);
      }
    }
  },
});

Deno.test({
  name: "ISA-L gzip: LAYERFS_GZIP=zlib turns it off",
  ignore: !ISAL,
  fn: async () => {
    const probe =
      'import { isalGunzipAvailable } from "./src/archive/compress/_gunzip_isal.ts"; console.log(isalGunzipAvailable())';
    const ask = async (env: Record<string, string>) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["eval", probe],
        cwd: new URL("../../../", import.meta.url).pathname,
        env,
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      return new TextDecoder().decode(out.stdout).trim();
    };
    assert.equal(await ask({ LAYERFS_GZIP: "zlib" }), "false");
    assert.equal(await ask({ LAYERFS_GZIP: "" }), "true");
  },
});

Deno.test({
  name:
    "ISA-L gzip: decompressing and applying a gzip tar loads no node: built-in",
  ignore: !ISAL,
  fn: async () => {
    // A fresh process: this one loaded node:zlib for the other tests. The
    // tar is gzipped there by CompressionStream (no node: module either).
    const probe = `
      import { applyTar, decompress, tarHeader, TarWriter } from "./mod.ts";
      import { loadedBuiltins } from "./src/_node.ts";
      const body = new TextEncoder().encode("hello\\n");
      const w = new TarWriter();
      const tarBytes = new Response(w.readable).bytes();
      await w.add(tarHeader({ name: "a.txt", size: body.length }), body);
      await w.close();
      const tar = await tarBytes;
      const gz = ReadableStream.from([tar]).pipeThrough(new CompressionStream("gzip"));
      const { compression, stream } = await decompress(gz);
      const dir = await Deno.makeTempDir();
      await applyTar(dir, stream);
      const text = await Deno.readTextFile(dir + "/a.txt");
      await Deno.remove(dir, { recursive: true });
      console.log(JSON.stringify({ compression, text, loaded: loadedBuiltins() }));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", probe],
      cwd: new URL("../../../", import.meta.url).pathname,
      env: { LAYERFS_GZIP: "" },
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
      compression: "gzip",
      text: "hello\n",
      loaded: [],
    });
  },
});
