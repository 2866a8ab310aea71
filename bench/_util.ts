/**
 * Internal: what every benchmark shares: a seeded PRNG (so a corpus is the
 * same every run), running a command, and the median.
 *
 * @module
 */

/** mulberry32: a tiny seeded PRNG, so the corpus is the same every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `cmd args` (in `cwd`), returns its stdout; a non-zero exit throws with its stderr. */
export async function sh(
  cmd: string,
  args: string[],
  opts: { cwd?: string } = {},
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

/**
 * The command line of `podman` with its own throwaway store: `--root
 * <root>/root` and a runroot under `runBase` named after `root` (podman
 * refuses a runroot longer than 50 characters, so it cannot live under a
 * long temp path).
 */
export function podmanCommand(
  runBase: string,
  root: string,
  args: string[],
): string[] {
  return [
    "podman",
    "--root",
    `${root}/root`,
    "--runroot",
    `${runBase}/${root.slice(root.lastIndexOf("/") + 1)}`,
    "--storage-driver",
    "overlay",
    ...args,
  ];
}

/** Runs {@link podmanCommand}; returns its stdout. */
export function podmanAt(
  runBase: string,
): (root: string, args: string[]) => Promise<string> {
  return (root, args) => {
    const [cmd, ...rest] = podmanCommand(runBase, root, args);
    return sh(cmd, rest);
  };
}

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One measured process: wall seconds, peak RSS and CPU (user + sys). */
export interface Run {
  /** Wall time, spawn to exit. */
  secs: number;
  /** Peak RSS in MiB. */
  mib: number;
  /** CPU seconds (user + sys) of the process and the children it waited for. */
  cpu: number;
}

/**
 * Runs `cmd` under `/usr/bin/time`; its stdout is dropped, a non-zero exit
 * throws with its stderr.
 */
export async function timeCommand(cmd: string[]): Promise<Run> {
  const out = await Deno.makeTempFile({ prefix: "layerfs-time-" });
  try {
    const t = performance.now();
    const r = await new Deno.Command("/usr/bin/time", {
      args: ["-f", "%M %U %S", "-o", out, ...cmd],
      stdout: "null",
      stderr: "piped",
    }).output();
    const secs = (performance.now() - t) / 1000;
    if (r.code !== 0) {
      throw new Error(
        `${cmd.join(" ")} failed (${r.code}): ${
          new TextDecoder().decode(r.stderr)
        }`,
      );
    }
    const [kib, user, sys] = Deno.readTextFileSync(out).trim().split("\n")
      .pop()!.split(" ").map(Number);
    return { secs, mib: kib / 1024, cpu: user + sys };
  } finally {
    await Deno.remove(out).catch(() => {});
  }
}

/** CPU seconds (user + sys) process `pid` has used so far (`/proc/PID/stat`). */
export function processCpu(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name, which is in parentheses and may hold spaces.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 (1-based), in clock ticks (100/s).
  return (Number(f[11]) + Number(f[12])) / 100;
}
