/**
 * Internal: the CLI's shared types (the command table's entries and what a
 * command runs with and returns), in a types-only module so that the
 * command files (`_commands.ts`, `_image_commands.ts`, `login.ts`) and the
 * tables (`_spec.ts`, `_image_spec.ts`) import them without a cycle.
 *
 * @module
 */

import type { ByteWriter } from "../archive/write_file.ts";
import type { BackendName } from "../backends/registry.ts";

/** Global options after parsing. */
export interface GlobalOptions {
  /** `--root`. */
  root?: string;
  /** `--backend`. */
  backend: "auto" | BackendName;
  /** `--json`. */
  json: boolean;
  /** `--quiet`. */
  quiet: boolean;
}

/** One option (what `_argv.ts` parses) plus its help line. */
export interface OptionSpec {
  /** Whether it takes a value (see `_argv.ts`). */
  type: "string" | "boolean";
  /** One-letter alias. */
  short?: string;
  /** May be given more than once. */
  multiple?: boolean;
  /** Help text, e.g. "--parent P   the parent layer". */
  help: string;
}

/** One command of the CLI. */
export interface CommandSpec {
  /** Command name as typed. */
  name: string;
  /** Other names accepted for it. */
  aliases?: string[];
  /** The positional part of the usage line, e.g. "ID [--parent P]". */
  usage: string;
  /** One-line summary. */
  summary: string;
  /** Longer description (may be several lines). */
  description?: string;
  /** Command-specific options. */
  options: Record<string, OptionSpec>;
  /** Minimum and maximum number of positional arguments. */
  args: [number, number];
}

/** The process edges a command may touch, passed in by main.ts. */
export interface CliIo {
  /** Environment lookup. */
  env: (key: string) => string | undefined;
  /** Effective uid. */
  uid: number;
  /** Current directory. */
  cwd: string;
  /** Standard input as a stream. */
  stdin: () => ReadableStream<Uint8Array>;
  /** Standard output, where a tar goes without -o (`Deno.stdout`). */
  stdout: () => ByteWriter;
  /** Writes text to stderr. */
  stderr: (text: string) => void;
  /** Whether each standard stream is a terminal. */
  isTerminal: { stdin: boolean; stdout: boolean; stderr: boolean };
  /**
   * Runs `fn` with a signal that SIGINT or SIGTERM aborts (its reason an
   * `Interrupted`), listening only while `fn` runs. Without it, commands
   * run with a signal that never aborts.
   */
  interrupts?: <T>(
    fn: (signal: AbortSignal) => Promise<T>,
  ) => Promise<T>;
}

/** What a command produced. */
export interface CommandResult {
  /** The JSON document for `--json`. */
  json: unknown;
  /** Human text (a trailing newline is added). Omitted: print nothing. */
  text?: string;
  /** True when `text` is requested data (printed even with --quiet). */
  data?: boolean;
  /** Exit code (default 0). */
  exitCode?: number;
  /** The command wrote stdout itself (a tar): print nothing more. */
  wroteStdout?: boolean;
}

/** Context of one command run. */
export interface CommandContext {
  /** The store root in use. */
  root: string;
  /** Global options. */
  global: GlobalOptions;
  /** Command options. */
  values: Record<string, string | boolean | string[] | undefined>;
  /** Positional arguments. */
  args: string[];
  /** Process edges. */
  io: CliIo;
}
