/**
 * The `layerfs` command.
 *
 * ```
 * layerfs [--root DIR] [--backend auto|overlay|aufs|vfs] [--json] [--quiet] <command>
 * ```
 *
 * Exit codes: 0 success, 1 error (one line on stderr naming the problem and
 * what to do), 2 usage error (the message, then the command's help). With
 * `--json`, every run prints exactly one JSON document on stdout (an
 * `{"error": ...}` object when it fails), except `diff` without `-o`, which
 * writes the tar there. Set `LAYERFS_DEBUG=1` to get stack traces. A closed
 * standard output (`layerfs diff x | head`) ends the run quietly with exit
 * 141, as SIGPIPE would. SIGXFSZ is ignored, so a write past `ulimit -f`
 * fails with an error naming the file instead of killing the process.
 * SIGINT (Ctrl-C) or SIGTERM during `apply`, `pull`, `push`, `load` or
 * `save` stops the work cleanly (staging and temps removed, no reference
 * written, image layers already completed kept): one line "layerfs: pull of
 * REF interrupted", exit 130 (SIGINT) or 143 (SIGTERM). Other commands are
 * ended by the signal at once; nothing they leave is half-done (outputs are
 * unnamed until complete, views are released by the next open).
 *
 * @example Run it
 * ```sh
 * deno run -A jsr:@layerfs/layerfs/cli --root /tmp/store --backend vfs ls
 * ```
 *
 * @module
 */

import { LayerfsError, UsageError } from "../errors.ts";
import { CommandUsageError, parseCli } from "./_parse.ts";
import { commandHelp, mainHelp } from "./_spec.ts";
import type { CliIo } from "./_types.ts";
import { defaultRoot } from "./_root.ts";
import { EXIT_BROKEN_PIPE, isBrokenPipe } from "./_io_errors.ts";
import { listenForInterrupts } from "./_interrupt.ts";
import { ignoreFileSizeSignal } from "../sys/signal_linux.ts";
import denoJson from "../../deno.json" with { type: "json" };
import { loadModule } from "../_load_module.ts";

const commandsImpl = () =>
  loadModule<typeof import("./_commands.ts")>(
    new URL("./_commands.ts", import.meta.url),
  );

/** This layerfs's version (from deno.json). */
export const VERSION: string = denoJson.version;

export type { CliIo } from "./_types.ts";

const encoder = new TextEncoder();

/**
 * The real process edges: Deno's env, uid, cwd and standard streams.
 *
 * @example
 * ```ts ignore
 * import { processIo, runCli } from "./main.ts";
 * Deno.exit(await runCli(["ls"], processIo()));
 * ```
 */
export function processIo(): CliIo {
  return {
    env: (k) => Deno.env.get(k),
    uid: Deno.uid() ?? 0,
    cwd: Deno.cwd(),
    stdin: () => Deno.stdin.readable,
    stdout: () => Deno.stdout,
    stderr: (text) => {
      Deno.stderr.writeSync(encoder.encode(text));
    },
    isTerminal: {
      stdin: Deno.stdin.isTerminal(),
      stdout: Deno.stdout.isTerminal(),
      stderr: Deno.stderr.isTerminal(),
    },
    interrupts: listenForInterrupts,
  };
}

function writeStdout(text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

/** One line of an error's message (our messages are one line; others may not be). */
function oneLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return (msg.split("\n").find((l) => l.trim() !== "") ?? String(e)).trim();
}

/**
 * Runs the CLI with `argv` and returns the exit code. Never throws.
 *
 * @param argv Arguments after the program name.
 * @param io The process edges (see {@link processIo}).
 * @param print Where stdout text goes (default: the process's stdout).
 * @returns 0 on success, 1 on error, 2 on usage error, 130/143 when interrupted.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { processIo, runCli } from "./main.ts";
 * const root = await Deno.makeTempDir();
 * let out = "";
 * const print = (text: string) => void (out += text);
 * assert.equal(await runCli(["--root", root, "--backend", "vfs", "init"], processIo(), print), 0);
 * assert.equal(await runCli(["--root", root, "create", "base"], processIo(), print), 0);
 * out = "";
 * assert.equal(await runCli(["--root", root, "exists", "base"], processIo(), print), 0);
 * assert.equal(await runCli(["--root", root, "exists", "app"], processIo(), print), 1);
 * assert.equal(await runCli(["--root", root, "ls"], processIo(), print), 0);
 * assert.match(out, /^base\b/m);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function runCli(
  argv: string[],
  io: CliIo,
  print: (text: string) => void = writeStdout,
): Promise<number> {
  let json = argv.includes("--json");
  let helpText = mainHelp();
  try {
    const parsed = parseCli(argv);
    json = parsed.global.json;
    if (parsed.kind === "version") {
      print(
        json
          ? JSON.stringify({ version: VERSION }) + "\n"
          : `layerfs ${VERSION}\n`,
      );
      return 0;
    }
    if (parsed.kind === "help") {
      const text = parsed.command ? commandHelp(parsed.command) : mainHelp();
      print(json ? JSON.stringify({ help: text }) + "\n" : text);
      return 0;
    }
    helpText = commandHelp(parsed.command);
    const root = defaultRoot({
      flag: parsed.global.root,
      env: io.env,
      uid: io.uid,
      cwd: io.cwd,
    });
    // The commands' code loads only now: `--version` and help need none.
    const { runCommand } = await commandsImpl();
    const result = await runCommand(parsed.command.name, {
      root,
      global: parsed.global,
      values: parsed.values,
      args: parsed.args,
      io,
    });
    if (result.wroteStdout) return result.exitCode ?? 0;
    if (json) print(JSON.stringify(result.json) + "\n");
    else if (
      result.text !== undefined && (result.data || !parsed.global.quiet)
    ) {
      print(result.text + "\n");
    }
    return result.exitCode ?? 0;
  } catch (e) {
    // The reader of our output is gone: nobody to tell.
    if (isBrokenPipe(e)) return EXIT_BROKEN_PIPE;
    if (e instanceof CommandUsageError && e.command === undefined) {
      helpText = mainHelp();
    } else if (e instanceof CommandUsageError && e.command) {
      helpText = commandHelp(e.command);
    }
    const usage = e instanceof UsageError;
    const code = e instanceof LayerfsError ? e.exitCode : 1;
    const name = e instanceof Error ? e.name : "Error";
    if (io.env("LAYERFS_DEBUG") === "1" && e instanceof Error) {
      io.stderr(`${e.stack}\n`);
    }
    io.stderr(`layerfs: ${oneLine(e)}\n`);
    if (usage) io.stderr("\n" + helpText);
    if (json) {
      try {
        print(
          JSON.stringify({
            error: { name, message: oneLine(e), exitCode: code },
          }) + "\n",
        );
      } catch (p) {
        if (!isBrokenPipe(p)) throw p;
      }
    }
    return code;
  }
}

if (import.meta.main) {
  ignoreFileSizeSignal();
  Deno.exit(await runCli(Deno.args, processIo()));
}
