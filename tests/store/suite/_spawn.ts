/**
 * Running `_child.ts` for the multi-process scenarios: spawn one op, read
 * its first line (what it announces once it is where the test wants it).
 *
 * @module
 */

const CHILD = new URL("./_child.ts", import.meta.url).pathname;

/** Spawns `_child.ts` with `args`: stdin and stdout piped, stderr inherited. */
export function spawn(...args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--no-check", CHILD, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

/** Reads stdout until the first line. */
export async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.getReader();
  const dec = new TextDecoder();
  let buf = "";
  while (!buf.includes("\n")) {
    const r = await reader.read();
    if (r.done) throw new Error(`child exited before printing: ${buf}`);
    buf += dec.decode(r.value, { stream: true });
  }
  reader.releaseLock();
  return buf.slice(0, buf.indexOf("\n"));
}

/** Kills `child` with SIGKILL and waits until it is gone (reaped, pipes closed). */
export async function killNow(child: Deno.ChildProcess): Promise<void> {
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel().catch(() => {});
  await child.stdin.close().catch(() => {});
}
