/**
 * The CLI's option parser against `node:util`'s `parseArgs`, which it
 * replaces: the same values and positionals for thousands of argument
 * vectors drawn from the cases that matter (long and short options, inline
 * values, groups, repeats, `--`, `-`, unknown options, odd names), strict
 * and not, and an error exactly where `parseArgs` throws one.
 */

import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import { type ArgvOption, parseArgv } from "../../src/cli/_argv.ts";

const OPTIONS: Record<string, ArgvOption> = {
  root: { type: "string" },
  backend: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
  force: { type: "boolean", short: "f" },
  output: { type: "string", short: "o" },
  store: { type: "string", multiple: true },
  all: { type: "boolean", multiple: true },
};

const WORDS = [
  "--root",
  "/s",
  "--root=/x",
  "--root=",
  "--root=a=b",
  "-h",
  "-f",
  "-o",
  "out",
  "-ofile",
  "-fo",
  "-of",
  "-fh",
  "-hfo",
  "-fox",
  "--json",
  "--json=1",
  "--bogus",
  "--bogus=2",
  "-z",
  "-zf",
  "-",
  "--",
  "app",
  "--store",
  "a",
  "--store=b",
  "--help",
  "--__proto__",
  "--constructor",
  "--=x",
  "--==x",
  "--=a=b",
  "--toString",
  "--hasOwnProperty",
  "-é",
  "-1",
  "--all",
  "--version",
  "--backend",
  "vfs",
  "-o-",
  "--output=-x",
  "",
];

/** Deterministic vectors: every single word and pair, then random longer ones. */
function* vectors(): Generator<string[]> {
  for (const a of WORDS) {
    yield [a];
    for (const b of WORDS) yield [a, b];
  }
  let x = 12345;
  for (let i = 0; i < 4000; i++) {
    const n = 3 + (i % 5);
    const v: string[] = [];
    for (let k = 0; k < n; k++) {
      x = (x * 1103515245 + 12345) >>> 0;
      v.push(WORDS[(x >>> 8) % WORDS.length]);
    }
    yield v;
  }
}

function node(args: string[], strict: boolean) {
  try {
    const r = parseArgs({
      args,
      options: OPTIONS,
      allowPositionals: true,
      strict,
    });
    return { values: { ...r.values }, positionals: r.positionals };
  } catch (e) {
    return { error: (e as { code?: string }).code ?? String(e) };
  }
}

function ours(args: string[], strict: boolean) {
  try {
    const r = parseArgv(args, OPTIONS, strict);
    return { values: { ...r.values }, positionals: r.positionals };
  } catch (e) {
    assert.equal((e as Error).name, "ArgvError", String(e));
    return { error: "refused" };
  }
}

for (const strict of [true, false]) {
  Deno.test(`cli argv: the same as node:util parseArgs (strict: ${strict})`, () => {
    let n = 0;
    let refused = 0;
    for (const args of vectors()) {
      const want = node(args, strict);
      const got = ours(args, strict);
      const label = `${JSON.stringify(args)} (strict: ${strict})`;
      if ("error" in want) {
        assert.ok(
          "error" in got,
          `${label}: parseArgs refuses (${want.error}), ours gave ${
            JSON.stringify(got)
          }`,
        );
        refused++;
      } else {
        assert.deepEqual(got, want, label);
      }
      n++;
    }
    assert.equal(n, WORDS.length * (WORDS.length + 1) + 4000);
    // Both kinds of outcome were exercised.
    if (strict) {
      assert.ok(
        refused > 1000 && refused < n - 500,
        `${refused} of ${n} refused`,
      );
    } else assert.equal(refused, 0);
  });
}

Deno.test("cli argv: each refusal names the option and what is wrong", () => {
  const cases: [string[], RegExp][] = [
    [["--bogus"], /: Unknown option --bogus$/],
    [["-z"], /: Unknown option -z$/],
    [["--root"], /: Option --root needs a value$/],
    [["-o"], /: Option -o needs a value$/],
    [["--json=1"], /: Option --json does not take a value$/],
    [
      ["--root", "-x"],
      /: Option --root needs a value, not -x \(a value that starts with "-" is written --root=-x\)$/,
    ],
    [
      ["-o", "-x"],
      /: Option -o needs a value, not -x \(a value that starts with "-" is written --output=-x\)$/,
    ],
  ];
  for (const [args, re] of cases) {
    assert.throws(
      () => parseArgv(args, OPTIONS, true),
      re,
      JSON.stringify(args),
    );
  }
});

Deno.test("cli argv: with once, a single-value option given twice is refused; repeatable and boolean ones are not", () => {
  const once = { strict: true, once: true };
  for (
    const args of [
      ["--root", "/a", "--root", "/b"],
      ["--root=/a", "--root=/a"],
      ["-o", "x", "--output=y"],
      ["-ox", "-oy"],
      ["-fox", "--output", "y"],
    ]
  ) {
    assert.throws(
      () => parseArgv(args, OPTIONS, once),
      /: Option -(-root|o|-output) given twice \(".*", ".*"\); it takes one value$/,
      JSON.stringify(args),
    );
    // Without once, the last wins, as in parseArgs.
    assert.doesNotThrow(() => parseArgv(args, OPTIONS, true));
  }
  const r = parseArgv(
    ["--store", "a", "--store=b", "-f", "--force", "--json", "--json"],
    OPTIONS,
    once,
  );
  assert.deepEqual(r.values, { store: ["a", "b"], force: true, json: true });
});
