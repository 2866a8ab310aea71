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
 * `podman` with its own throwaway store: `--root <root>/root` and a runroot
 * under `runBase` named after `root` (podman refuses a runroot longer than
 * 50 characters, so it cannot live under a long temp path).
 */
export function podmanAt(
  runBase: string,
): (root: string, args: string[]) => Promise<string> {
  return (root, args) =>
    sh("podman", [
      "--root",
      `${root}/root`,
      "--runroot",
      `${runBase}/${root.slice(root.lastIndexOf("/") + 1)}`,
      "--storage-driver",
      "overlay",
      ...args,
    ]);
}

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
