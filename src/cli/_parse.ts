/**
 * Argument parsing for the CLI (`_argv.ts`, parseArgs' rules without
 * loading `node:util`): global options, then the command, then its options
 * and arguments (global options are accepted after the command too).
 *
 * @module
 */

import { ArgvError, type ArgvOption, parseArgv } from "./_argv.ts";
import { backendNames } from "../backends/registry.ts";
import { UsageError } from "../errors.ts";
import { type CommandSpec, findCommand, GLOBAL_OPTIONS } from "./_spec.ts";

export type { GlobalOptions } from "./_types.ts";
import type { GlobalOptions } from "./_types.ts";

/** A parsed command line. */
export type Parsed =
  | { kind: "help"; command?: CommandSpec; global: GlobalOptions }
  | { kind: "version"; global: GlobalOptions }
  | {
    kind: "run";
    command: CommandSpec;
    global: GlobalOptions;
    /** Command options by long name. */
    values: Record<string, string | boolean | string[] | undefined>;
    /** Positional arguments after the command name. */
    args: string[];
  };

/** A usage error that knows which command's help to print. */
export class CommandUsageError extends UsageError {
  /** The command being parsed, when known. */
  readonly command?: CommandSpec;
  constructor(message: string, command?: CommandSpec) {
    super(message);
    this.command = command;
  }
}

// `--backend` choices: the registry's backends, plus "auto".
const BACKENDS: readonly string[] = ["auto", ...backendNames()];

/** `parseArgv`, its refusals as usage errors of `command`. */
function parse(
  argv: string[],
  options: Record<string, ArgvOption>,
  strict: boolean,
  command?: CommandSpec,
) {
  try {
    // `once`: a single-value option given twice is refused, not overridden.
    return parseArgv(argv, options, { strict, once: true });
  } catch (e) {
    if (e instanceof ArgvError) throw new CommandUsageError(e.message, command);
    throw e;
  }
}

/**
 * Parses the CLI's argument vector.
 *
 * @param argv Arguments after the program name.
 * @returns What to run, or that help was asked for.
 * @throws {CommandUsageError} on unknown commands/options or wrong arity.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCli } from "./_parse.ts";
 * const p = parseCli(["--root", "/tmp/s", "create", "app", "--parent", "base"]);
 * assert.equal(p.kind, "run");
 * if (p.kind === "run") {
 *   assert.equal(p.command.name, "create");
 *   assert.deepEqual(p.args, ["app"]);
 *   assert.equal(p.values.parent, "base");
 *   assert.equal(p.global.root, "/tmp/s");
 * }
 * ```
 */
export function parseCli(argv: string[]): Parsed {
  // Pass 1: find the command (the first positional) with global options only.
  const first = parse(argv, GLOBAL_OPTIONS, false);
  if (first.values.version === true) {
    return { kind: "version", global: globalsOf(first.values) };
  }
  const name = first.positionals[0];
  let command: CommandSpec | undefined;
  if (name === "help") {
    const target = first.positionals[1];
    const c = target === undefined ? undefined : findCommand(target);
    if (target !== undefined && c === undefined) {
      throw new CommandUsageError(`Unknown command "${target}"`);
    }
    return { kind: "help", command: c, global: globalsOf(first.values) };
  }
  if (name !== undefined) {
    command = findCommand(name);
    if (command === undefined) {
      throw new CommandUsageError(`Unknown command "${name}"`);
    }
  }

  // Pass 2: strict parse with the command's options added.
  const parsed = parse(
    argv,
    { ...GLOBAL_OPTIONS, ...command?.options },
    true,
    command,
  );
  const values: Record<string, string | boolean | string[] | undefined> =
    parsed.values;
  const global = globalsOf(values, command);
  if (values.help || command === undefined) {
    if (command === undefined && !values.help) {
      throw new CommandUsageError("Missing command");
    }
    return { kind: "help", command, global };
  }
  const args = parsed.positionals.slice(1);
  const [min, max] = command.args;
  if (args.length < min) {
    throw new CommandUsageError(
      `Missing argument: ${command.usage.split(" ")[args.length] ?? "ID"}`,
      command,
    );
  }
  if (args.length > max) {
    throw new CommandUsageError(
      `Unexpected argument ${JSON.stringify(args[max])}`,
      command,
    );
  }
  const own: Record<string, string | boolean | string[] | undefined> = {};
  for (const k of Object.keys(command.options)) own[k] = values[k];
  return { kind: "run", command, global, values: own, args };
}

function globalsOf(
  values: Record<string, unknown>,
  command?: CommandSpec,
): GlobalOptions {
  const backend = values.backend ?? "auto";
  if (
    typeof backend !== "string" ||
    !BACKENDS.includes(backend)
  ) {
    throw new CommandUsageError(
      `Unknown backend ${JSON.stringify(backend)}; use one of ${
        BACKENDS.join(", ")
      }`,
      command,
    );
  }
  const root = values.root;
  if (root !== undefined && typeof root !== "string") {
    throw new CommandUsageError("Option --root needs a value", command);
  }
  return {
    root,
    backend: backend as GlobalOptions["backend"],
    json: values.json === true,
    quiet: values.quiet === true,
  };
}
