/**
 * Test helpers: GNU tar as the oracle, and a tree of every kind of file the
 * codec must carry (built and described by python3, independently of our code).
 *
 * @module
 */

import { isRoot } from "../../_privileged.ts";

/** Runs a command; returns stdout, throws with stderr on a non-zero exit. */
export async function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; allowFail?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    // A fixed locale: GNU tar's listings and messages (and python's) do not
    // depend on the caller's LANG.
    env: { LC_ALL: "C" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const res = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (out.code !== 0 && !opts.allowFail) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${out.code}: ${res.stderr}`,
    );
  }
  return res;
}

const MAKE_TREE = String.raw`
import os, sys, hashlib
root, priv = sys.argv[1], sys.argv[2] == "1"
os.makedirs(root, exist_ok=True)
os.chdir(root)
def w(p, data, mode=0o644):
    d = os.path.dirname(p)
    if d: os.makedirs(d, exist_ok=True)
    with open(p, "wb") as f: f.write(data)
    os.chmod(p, mode)
w("plain", b"hello")
w("empty", b"")
w("exact512", bytes(range(256)) * 2)
# 3 MiB + 17: crosses the reader's 1 MiB chunks; deterministic content.
w("big.bin", hashlib.sha256(b"seed").digest() * (3 * 32768) + b"x" * 17)
w("setuid", b"#!/bin/sh\n", 0o4755)
w("setgid", b"g", 0o2711)
if priv:
    # A mode-000 file can be read (archived, dumped) only with CAP_DAC_OVERRIDE.
    w("none", b"n", 0o000)
os.mkdir("sticky"); os.chmod("sticky", 0o1777)
mid = "mid/" + "m" * 90 + "/" + "n" * 90
w(mid + "/f", b"mid")
deep = "deep/" + "c" * 200 + "/" + "d" * 200
w(deep + "/file", b"deep")
w("deep/" + "e" * 255, b"long component")
w("ünïcødé/日本語.txt", "unicode".encode())
w("emoji-🙂", b":)")
os.symlink("plain", "link")
os.symlink("t" * 150, "longlink")
os.link("plain", "hard")
os.mkfifo("pipe")
os.setxattr("plain", "user.bin", bytes([0, 0xff, 0x41, 0x0a, 0x3d, 0x80]))
os.setxattr("plain", "user.empty", b"")
os.setxattr("plain", "user.text", b"hello world")
os.setxattr("mid", "user.dir", b"1")
if priv:
    os.mknod("null", 0o666 | 0o020000, os.makedev(1, 3))
    os.mknod("blk", 0o640 | 0o060000, os.makedev(7, 200))
    os.chown("plain", 1234, 5678, follow_symlinks=False)
    w("bigid", b"big ids")
    os.chown("bigid", 3000000, 4000000)
    os.chown("link", 42, 43, follow_symlinks=False)
w("old", b"before 1970")
# Deterministic times, sub-second everywhere, set deepest first so dirs keep theirs.
paths = []
for d, dirs, files in os.walk(".", topdown=False):
    for n in files + dirs: paths.append(os.path.join(d, n))
paths.append(".")
for i, p in enumerate(paths):
    ns = 1700000000 * 10**9 + i * 1000003 * 997 + 123456789
    if p == "./old": ns = -1000000 * 10**9 + 500000000
    os.utime(p, ns=(ns, ns), follow_symlinks=False)
`;

const DUMP_TREE = String.raw`
import os, sys, json, stat, hashlib
root = sys.argv[1]
out = {}
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        p = os.path.join(d, n)
        st = os.lstat(p)
        m = st.st_mode
        e = {"mode": stat.S_IMODE(m), "uid": st.st_uid, "gid": st.st_gid,
             "mtime": st.st_mtime_ns // 10**9, "nsec": st.st_mtime_ns % 10**9, "ino": st.st_ino, "nlink": st.st_nlink}
        if stat.S_ISREG(m):
            e["type"] = "file"; e["size"] = st.st_size
            with open(p, "rb") as f: e["sha"] = hashlib.sha256(f.read()).hexdigest()
        elif stat.S_ISDIR(m): e["type"] = "dir"
        elif stat.S_ISLNK(m): e["type"] = "symlink"; e["link"] = os.readlink(p)
        elif stat.S_ISFIFO(m): e["type"] = "fifo"
        elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
            e["type"] = "char" if stat.S_ISCHR(m) else "block"
            e["major"] = os.major(st.st_rdev); e["minor"] = os.minor(st.st_rdev)
        x = {}
        if not stat.S_ISLNK(m):
            for k in sorted(os.listxattr(p, follow_symlinks=False)):
                x[k] = os.getxattr(p, k, follow_symlinks=False).hex()
        e["xattrs"] = x
        out[os.path.relpath(p, root)] = e
print(json.dumps(out))
`;

/** What python's lstat says about one path of a tree. */
export interface Meta {
  type: "file" | "dir" | "symlink" | "fifo" | "char" | "block";
  mode: number;
  uid: number;
  gid: number;
  /** Whole seconds (floor). */
  mtime: number;
  /** Nanoseconds past `mtime`. */
  nsec: number;
  ino: number;
  nlink: number;
  size?: number;
  sha?: string;
  link?: string;
  major?: number;
  minor?: number;
  xattrs: Record<string, string>;
}

let warned = false;

/**
 * Builds the test tree at `dir`. Devices, foreign owners and the mode-000
 * file `none` only as root: without CAP_DAC_OVERRIDE neither GNU tar nor
 * python could read `none` back.
 */
export async function makeTree(dir: string): Promise<void> {
  if (!isRoot && !warned) {
    warned = true;
    console.warn(
      "tests/archive/tar: the test tree has no devices, foreign owners or mode-000 file: " +
        "making and reading them needs root; run as root to cover them",
    );
  }
  await run("python3", ["-c", MAKE_TREE, dir, isRoot ? "1" : "0"]);
}

/** Describes every path under `dir` (relative, no "./"), as python's lstat sees it. */
export async function dumpTree(dir: string): Promise<Record<string, Meta>> {
  return JSON.parse((await run("python3", ["-c", DUMP_TREE, dir])).stdout);
}

/** Hex of bytes. */
export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** SHA-256 hex of bytes. */
export async function sha256(b: Uint8Array): Promise<string> {
  return hex(
    new Uint8Array(
      await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>),
    ),
  );
}

/** Archive name without "./" and trailing "/". */
export function clean(name: string): string {
  let n = name.startsWith("./") ? name.slice(2) : name;
  while (n.endsWith("/")) n = n.slice(0, -1);
  return n;
}
