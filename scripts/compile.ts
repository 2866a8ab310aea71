/**
 * `deno task compile`: builds `dist/layerfs` and `dist/layerfs-helper` with
 * `deno compile`, each with only the permissions it needs embedded.
 *
 * `deno compile` needs `denort` (the runtime it embeds the program into),
 * which it downloads from dl.deno.land unless `DENORT_BIN` names a local copy.
 * When neither works (no network), this script says so in one line and exits 1.
 *
 * Usage: `deno task compile [--out DIR] [--target TRIPLE]`
 *
 * @module
 */

import { parseArgs } from "node:util";

/** The helper's environment: sudo's identity variables, and the hostile names it refuses. */
const HELPER_ENV = [
  "SUDO_UID",
  "SUDO_GID",
  "DENO_INTERNAL_CHILD_ENTRYPOINT",
  "NODE_CHANNEL_FD",
  "LD_PRELOAD",
  "LD_LIBRARY_PATH",
  "LD_AUDIT",
];

/** One binary to build. */
export interface CompileTarget {
  /** Output file name. */
  name: string;
  /** Entry module, relative to the repository root. */
  entry: string;
  /** Permission flags embedded in the binary. */
  permissions: string[];
  /** Modules loaded at run time only (worker entry points), relative to the root. */
  include?: string[];
}

/**
 * The two binaries and their permissions.
 *
 * The helper gets no --allow-write, --allow-run or --allow-net: it reads its
 * config, the account files and mountinfo, and does everything else through
 * libc (FFI: opens, statx, fsopen/fsconfig/fsmount/move_mount, umount2).
 * FFI is, by nature, outside Deno's permission model; what bounds the helper
 * is its validation, not these flags, which only make accidents fail early.
 *
 * @example
 * ```ts
 * import { TARGETS } from "./compile.ts";
 * console.log(TARGETS.map((t) => t.name)); // ["layerfs", "layerfs-helper"]
 * ```
 */
export const TARGETS: CompileTarget[] = [
  {
    name: "layerfs",
    entry: "src/cli/main.ts",
    // The CLI reads and writes stores anywhere, runs the helper/visudo/groupadd,
    // and reads LAYERFS_*, HOME, XDG_DATA_HOME.
    permissions: [
      "--allow-read",
      "--allow-write",
      "--allow-ffi",
      "--allow-run",
      "--allow-env",
      "--allow-sys=uid,gid",
    ],
    // Neither `new Worker(url)` nor `loadModule(url)` (src/_load_module.ts)
    // is followed by the module graph: src/preload.ts imports every module
    // loaded on first use (tests/compile/include_test.ts checks both).
    include: [
      "src/image/_unpack_worker.ts",
      "src/archive/export/_file_prefetch_worker.ts",
      "src/preload.ts",
    ],
  },
  {
    name: "layerfs-helper",
    entry: "helper/main.ts",
    permissions: [
      "--allow-read=/etc/passwd,/etc/group",
      "--allow-ffi",
      `--allow-env=${HELPER_ENV.join(",")}`,
    ],
  },
];

/** One line explaining a failed compile, from deno's error output. */
export function explainFailure(stderr: string): string {
  if (/dl\.deno\.land|denort|error sending request|dns error/i.test(stderr)) {
    return "deno compile cannot get denort (no network to dl.deno.land): set DENORT_BIN to a denort binary of this Deno version and rerun";
  }
  const line = stderr.split("\n").map((l) =>
    // deno colours its output
    // deno-lint-ignore no-control-regex
    l.replace(/\x1b\[[0-9;]*m/g, "").trim()
  ).find((l) => l.startsWith("error")) ?? stderr.trim().split("\n")[0];
  return `deno compile failed: ${line}`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string" }, target: { type: "string" } },
  });
  const repo = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const out = values.out ?? `${repo}/dist`;
  await Deno.mkdir(out, { recursive: true });
  const denort = Deno.env.get("DENORT_BIN");
  if (denort) {
    try {
      await Deno.stat(denort);
    } catch {
      console.error(
        `DENORT_BIN=${denort} does not exist; point it at a denort binary`,
      );
      Deno.exit(1);
    }
  }
  for (const t of TARGETS) {
    const args = [
      "compile",
      "--quiet",
      ...t.permissions,
      ...(t.include ?? []).flatMap((m) => ["--include", `${repo}/${m}`]),
      ...(values.target ? ["--target", values.target] : []),
      "--output",
      `${out}/${t.name}`,
      `${repo}/${t.entry}`,
    ];
    const r = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: repo,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) {
      console.error(explainFailure(new TextDecoder().decode(r.stderr)));
      Deno.exit(1);
    }
    console.log(`built ${out}/${t.name} (${t.permissions.join(" ")})`);
  }
}
