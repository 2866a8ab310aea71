/**
 * Internal: the CLI's option parser, the subset of `node:util`'s
 * `parseArgs` the CLI uses (long and short options, `--name=value`,
 * grouped short flags, repeatable options, `--`), with the same results.
 *
 * Why not `parseArgs` itself: a static `node:util` import sets up Deno's
 * Node compatibility layer in every CLI run, ~12 ms of CPU (Deno 2.9.6,
 * profiled in `layerfs ls`: its ext scripts and Node internals) of a
 * command that otherwise needs no Node module; JSR's `@std/cli` is not
 * reachable here, and an npm parser (`mri`) cost more to load than
 * `node:util`. `tests/cli/argv_test.ts` checks this parser against
 * `parseArgs` on the same argument vectors.
 *
 * @module
 */

/** One option: its type, a one-letter alias, whether it repeats. */
export interface ArgvOption {
  /** A string option takes a value (`--root DIR`, `--root=DIR`); a boolean does not. */
  type: "string" | "boolean";
  /** A one-letter alias (`-h`). */
  short?: string;
  /** Each use adds a value (an array) instead of replacing it. */
  multiple?: boolean;
}

/** What {@link parseArgv} found. */
export interface ParsedArgv {
  /** Options by long name (unknown ones too, when not strict: `true` or their inline value). */
  values: Record<string, string | boolean | string[]>;
  /** Arguments that are not options, in order (everything after `--`). */
  positionals: string[];
}

/** How {@link parseArgv} reads `args`. */
export interface ParseArgvMode {
  /** Refuse what `parseArgs` refuses (unknown options, missing values). */
  strict: boolean;
  /**
   * Refuse a string option without `multiple` given twice (`parseArgs` keeps
   * the last, silently dropping the first). Only with `strict`.
   */
  once?: boolean;
}

/** Why an argument vector was refused (strict mode). */
export class ArgvError extends Error {
  /** @param message One line that names the option. */
  constructor(message: string) {
    super(message);
    this.name = "ArgvError";
  }
}

/**
 * Parses `args` against `options`. Strict: an unknown option, a string
 * option without its value, a value for a boolean, or a value taken from
 * the next argument that looks like an option throws {@link ArgvError}.
 * Not strict: unknown options are kept as `true` (or their inline value)
 * and nothing throws; a string option without a value is `true`.
 * `strict` may be a {@link ParseArgvMode}: with `once`, a string option
 * that does not repeat (no `multiple`) given twice throws too.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseArgv } from "./_argv.ts";
 * const p = parseArgv(["--root", "/s", "rm", "-f", "a", "--", "-b"], {
 *   root: { type: "string" },
 *   force: { type: "boolean", short: "f" },
 * }, true);
 * assert.deepEqual(p.values, { root: "/s", force: true });
 * assert.deepEqual(p.positionals, ["rm", "a", "-b"]);
 * assert.throws(() => parseArgv(["--bogus"], {}, true), /Unknown option --bogus/);
 * ```
 */
export function parseArgv(
  args: readonly string[],
  options: Readonly<Record<string, ArgvOption>>,
  mode: boolean | ParseArgvMode,
): ParsedArgv {
  const strict = typeof mode === "boolean" ? mode : mode.strict;
  const once = typeof mode !== "boolean" && mode.strict && mode.once === true;
  const values: Record<string, string | boolean | string[]> = {};
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) {
    if (o.short) byShort.set(o.short, name);
  }
  const spec = (name: string) =>
    Object.hasOwn(options, name) ? options[name] : undefined;
  const store = (name: string, value: string | boolean, shown?: string) => {
    if (name === "__proto__") return; // as parseArgs: never a key
    const o = spec(name);
    if (
      once && o?.type === "string" && !o.multiple && Object.hasOwn(values, name)
    ) {
      // Keeping only the last value would drop the first without a word.
      throw new ArgvError(
        `Option ${shown ?? `--${name}`} given twice (${
          JSON.stringify(values[name])
        }, ${JSON.stringify(value)}); it takes one value`,
      );
    }
    const list = values[name];
    values[name] = !spec(name)?.multiple
      ? value
      : Object.hasOwn(values, name) && Array.isArray(list)
      ? [...list, value as string]
      : [value as string];
  };
  const rest = [...args];
  while (rest.length > 0) {
    const arg = rest.shift()!;
    if (arg === "--") {
      positionals.push(...rest);
      break;
    }
    if (arg.length < 2 || arg[0] !== "-") {
      positionals.push(arg);
      continue;
    }
    let name: string;
    let shown: string;
    let inline: string | undefined;
    if (arg[1] === "-") {
      // As parseArgs: an inline value needs a "=" at index 3 or later, and
      // the name ends at the first "=" ("--=x" is named "=x", "--==x" "").
      const eq = arg.includes("=", 3) ? arg.indexOf("=") : -1;
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
      shown = `--${name}`;
    } else {
      const letter = arg[1];
      const long = byShort.get(letter);
      if (arg.length > 2) {
        // A group: `-ovalue` when the first letter takes a value, else
        // `-abc` is `-a -b -c`, up to a letter that takes a value, which
        // takes the rest (`-fovalue` is `-f -ovalue`), as in parseArgs.
        if (long !== undefined && options[long].type === "string") {
          store(long, arg.slice(2), `-${letter}`);
          continue;
        }
        const expanded: string[] = [];
        for (let i = 1; i < arg.length; i++) {
          const l = byShort.get(arg[i]);
          if (
            l !== undefined && options[l].type === "string" &&
            i < arg.length - 1
          ) {
            expanded.push(`-${arg.slice(i)}`);
            break;
          }
          expanded.push(`-${arg[i]}`);
        }
        rest.unshift(...expanded);
        continue;
      }
      name = long ?? letter;
      shown = `-${letter}`;
    }
    const o = spec(name);
    if (o === undefined) {
      if (strict) throw new ArgvError(`Unknown option ${shown}`);
      store(name, inline ?? true);
      continue;
    }
    if (o.type === "boolean") {
      if (inline !== undefined && strict) {
        throw new ArgvError(`Option ${shown} does not take a value`);
      }
      store(name, inline ?? true);
      continue;
    }
    if (inline !== undefined) {
      store(name, inline, shown);
      continue;
    }
    const next = rest[0];
    if (next === undefined) {
      if (strict) throw new ArgvError(`Option ${shown} needs a value`);
      store(name, true);
      continue;
    }
    if (strict && next.length > 1 && next.startsWith("-")) {
      // Most often a forgotten value before the next option; say both.
      throw new ArgvError(
        `Option ${shown} needs a value, not ${next} (a value that starts with "-" is written --${name}=${next})`,
      );
    }
    store(name, rest.shift()!, shown);
  }
  return { values, positionals };
}
