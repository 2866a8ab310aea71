/**
 * Test helpers for the export and changes tests: shell out to build trees
 * (touch -h for exact ns mtimes, mknod, setfattr), collect streams, list tars
 * with GNU tar.
 *
 * @module
 */

/** Runs a bash script in `cwd`; throws with its stderr on failure; returns stdout. */
export async function sh(script: string, cwd?: string): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: ["-euo", "pipefail", "-c", script],
    cwd,
    env: { TZ: "UTC", LC_ALL: "C" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `script failed (${out.code}): ${script}\n${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return text;
}

/** Reads a whole stream into one array. */
export async function collect(
  s: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  return await new Response(s).bytes();
}

/** Writes `bytes` to `path`. */
export async function save(path: string, bytes: Uint8Array): Promise<string> {
  await Deno.writeFile(path, bytes);
  return path;
}

/**
 * `tar --xattrs -tvv --full-time --numeric-owner` of a tar file, one array of
 * whitespace-separated fields per line (column widths vary with content).
 */
export async function gnuList(tarPath: string): Promise<string[]> {
  const out = await sh(
    `tar --xattrs --xattrs-include='*' --numeric-owner --full-time --quoting-style=literal -tvvf '${tarPath}'`,
  );
  return out.split("\n").filter((l) => l.length > 0).map((l) =>
    l.trim().split(/\s+/).join(" ")
  );
}

/** The entry names of a tar (GNU tar -t). */
export async function gnuNames(tarPath: string): Promise<string[]> {
  const out = await sh(`tar --quoting-style=literal -tf '${tarPath}'`);
  return out.split("\n").filter((l) => l.length > 0);
}
