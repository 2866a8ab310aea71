/**
 * The helper's end-to-end fixture: a fresh system user, a copy of the sources
 * it can read, the helper behind a real sudoers rule, and an overlay store the
 * user made with the CLI (`base`, `child` on it, and a read-write `ctr` on
 * `child`). Everything it changes is put back in `finally`, also when the
 * test fails midway: the user (and its group) is deleted, every mount under
 * the temp dir is detached, /etc/layerfs/helper.json, /etc/sudoers.d/layerfs,
 * /etc/layerfs and /run/layerfs-helper are restored to what was there.
 *
 * The helper's config and sudoers paths are constants (on purpose), so runs
 * from several checkouts on one machine serialise on a lock held on
 * /etc/sudoers.d itself (nothing left behind).
 *
 * @module
 */

import assert from "node:assert/strict";
import { tempDir, unmountUnder } from "../_privileged.ts";
import { CONFIG_PATH } from "../../helper/config.ts";
import { helperInstall, SUDOERS_PATH } from "../../helper/install.ts";
import { RUN_DIR } from "../../helper/_inuse.ts";
import {
  AT_FDCWD,
  close,
  flock,
  LOCK,
  O,
  openat,
} from "../../src/sys/fd_linux.ts";
import { SysError } from "../../src/sys/libc_linux.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** What a command printed. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion. */
export async function run(
  cmd: string[],
  env: Record<string, string> = {},
): Promise<Ran> {
  const out = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** Saves a file (or its absence) and returns a restorer. */
export async function save(path: string): Promise<() => Promise<void>> {
  let data: Uint8Array | undefined;
  let mode = 0o644;
  try {
    data = await Deno.readFile(path);
    mode = (await Deno.stat(path)).mode! & 0o7777;
  } catch { /* absent */ }
  return async () => {
    if (data === undefined) await Deno.remove(path).catch(() => {});
    else {
      await Deno.writeFile(path, data, { mode });
      await Deno.chmod(path, mode);
    }
  };
}

/** Saves whether a directory exists; the restorer removes it if it did not. */
async function saveDir(path: string): Promise<() => Promise<void>> {
  const existed = await Deno.stat(path).then(() => true, () => false);
  return async () => {
    if (!existed) await Deno.remove(path, { recursive: true }).catch(() => {});
  };
}

/**
 * An exclusive flock(2) on /etc/sudoers.d, polled so that test modules run
 * in parallel in one process (flock is per open file, unlike the per-process
 * fcntl locks) and other checkouts' runs take turns. Bounded: ten minutes.
 */
export async function lockSerial(): Promise<Disposable> {
  const fd = openat(AT_FDCWD, "/etc/sudoers.d", O.RDONLY | O.DIRECTORY);
  for (let i = 0;; i++) {
    try {
      flock(fd, LOCK.EX | LOCK.NB);
      return { [Symbol.dispose]: () => close(fd) };
    } catch (e) {
      if (!(e instanceof SysError && e.code === "EAGAIN") || i >= 6000) {
        close(fd);
        throw e;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The running fixture. */
export interface HelperEnv {
  /** The temp dir (root-owned, 0755). */
  t: string;
  /** The store root (owned by the user). */
  store: string;
  /** A dir the user owns outside the store. */
  home: string;
  /** The helper command (a root-owned script running helper/main.ts). */
  helperBin: string;
  /** The user's uid and gid. */
  uid: number;
  gid: number;
  /** The user's name (also its group, the one the sudoers rule names). */
  user: string;
  /** Runs a command as the user, with LAYERFS_HELPER set. */
  asUser(args: string[], extraEnv?: string[]): Promise<Ran>;
  /** Runs the layerfs CLI as the user on the store. */
  cli(args: string[]): Promise<Ran>;
  /** Runs `sudo -n helper ARGS` as the user. */
  helper(args: string[], extraEnv?: string[]): Promise<Ran>;
  /** The helper's JSON reply (last stdout line). */
  reply(r: Ran): { ok: boolean; error?: { message: string; name: string } };
  /** Asserts that the helper refused `args` with a message matching `why`. */
  refused(args: string[], why: RegExp): Promise<void>;
  /** Overlay mounts (mount points) under the temp dir, from mountinfo. */
  overlays(): Promise<string[]>;
}

/**
 * Runs `fn` with a fresh helper setup; always cleans up.
 */
export async function withHelper(
  fn: (h: HelperEnv) => Promise<void>,
): Promise<void> {
  using _serial = await lockSerial();
  const user = `lfs-t-${crypto.randomUUID().slice(0, 8)}`;
  const restore = [
    await save(CONFIG_PATH),
    await save(SUDOERS_PATH),
    await saveDir("/etc/layerfs"),
    await saveDir(RUN_DIR),
  ];
  await using tmp = await tempDir();
  let userMade = false;
  try {
    const r = await run([
      "useradd",
      "--no-create-home",
      "--user-group",
      "--shell",
      "/usr/sbin/nologin",
      user,
    ]);
    assert.equal(r.code, 0, r.stderr);
    userMade = true;
    const uid = Number((await run(["id", "-u", user])).stdout);
    const gid = Number((await run(["id", "-g", user])).stdout);
    const t = tmp.path;
    await Deno.chmod(t, 0o755);
    // The user cannot read /root (where npx keeps deno) nor, maybe, the repo:
    // give it a copy of the sources and a link to the deno binary.
    const src = Deno.env.get("LAYERFS_TEST_HELPER_SOURCES") ?? REPO;
    await Deno.mkdir(`${t}/repo`);
    const cp = await run([
      "cp",
      "-r",
      `${src}/src`,
      `${src}/helper`,
      `${src}/mod.ts`,
      `${src}/deno.json`,
      `${t}/repo/`,
    ]);
    assert.equal(cp.code, 0, cp.stderr);
    try {
      await Deno.link(Deno.execPath(), `${t}/deno`);
    } catch {
      await Deno.copyFile(Deno.execPath(), `${t}/deno`);
    }
    await Deno.chmod(`${t}/deno`, 0o755);
    const helperBin = `${t}/layerfs-helper`;
    // The same permissions scripts/compile.ts embeds in the compiled helper.
    await Deno.writeTextFile(
      helperBin,
      `#!/bin/sh\nexec ${t}/deno run --no-config --allow-read=/etc/passwd,/etc/group --allow-ffi ` +
        `--allow-env=SUDO_UID,SUDO_GID,DENO_INTERNAL_CHILD_ENTRYPOINT,NODE_CHANNEL_FD,LD_PRELOAD,LD_LIBRARY_PATH,LD_AUDIT ` +
        `${t}/repo/helper/main.ts "$@"\n`,
    );
    await Deno.chmod(helperBin, 0o755);
    const store = `${t}/store`;
    const home = `${t}/home`;
    for (const d of [store, home]) {
      await Deno.mkdir(d, { recursive: true });
      await Deno.chown(d, uid, gid);
    }
    // Tars the user imports: a base, and a child that deletes a file and
    // makes a dir opaque (so the user's unprivileged extraction must write
    // whiteout state the helper's mount reads: user.overlay.* + userxattr).
    await Deno.mkdir(`${t}/b/etc`, { recursive: true });
    await Deno.mkdir(`${t}/b/var/cache`, { recursive: true });
    await Deno.writeTextFile(`${t}/b/etc/hosts`, "base\n");
    await Deno.writeTextFile(`${t}/b/etc/passwd`, "root\n");
    await Deno.writeTextFile(`${t}/b/var/cache/old`, "old\n");
    await Deno.mkdir(`${t}/c/etc`, { recursive: true });
    await Deno.mkdir(`${t}/c/var/cache`, { recursive: true });
    await Deno.writeTextFile(`${t}/c/etc/motd`, "child\n");
    await Deno.writeTextFile(`${t}/c/etc/.wh.passwd`, "");
    await Deno.writeTextFile(`${t}/c/var/cache/.wh..wh..opq`, "");
    await Deno.writeTextFile(`${t}/c/var/cache/new`, "new\n");
    await run(["tar", "-C", `${t}/b`, "-cf", `${t}/b.tar`, "."]);
    await run(["tar", "-C", `${t}/c`, "-cf", `${t}/c.tar`, "."]);
    await Deno.chmod(`${t}/b.tar`, 0o644);
    await Deno.chmod(`${t}/c.tar`, 0o644);

    await helperInstall({ group: user, path: helperBin, stores: [store] });

    const asUser = (args: string[], extraEnv: string[] = []) =>
      run([
        "sudo",
        "-u",
        user,
        "env",
        `HOME=${home}`,
        `DENO_DIR=${home}/deno`,
        "NO_COLOR=1",
        `LAYERFS_HELPER=sudo -n ${helperBin}`,
        ...extraEnv,
        ...args,
      ]);
    const cli = (args: string[]) =>
      asUser([
        `${t}/deno`,
        "run",
        "-A",
        `${t}/repo/src/cli/main.ts`,
        "--root",
        store,
        ...args,
      ]);
    const helper = (args: string[], extraEnv: string[] = []) =>
      asUser(["sudo", "-n", helperBin, ...args], extraEnv);
    const reply = (r: Ran) => JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    const h: HelperEnv = {
      t,
      store,
      home,
      helperBin,
      uid,
      gid,
      user,
      asUser,
      cli,
      helper,
      reply,
      async refused(args, why) {
        const res = await helper(args);
        assert.equal(
          res.code,
          1,
          `${args.join(" ")}: ${res.stdout} ${res.stderr}`,
        );
        const rep = reply(res);
        assert.equal(rep.ok, false);
        assert.match(rep.error.message, why);
      },
      async overlays() {
        const info = await Deno.readTextFile("/proc/self/mountinfo");
        return info.split("\n").filter((l) => / - overlay /.test(l)).map((
          l,
        ) => l.split(" ")[4]).filter((p) => p.startsWith(t + "/"));
      },
    };
    let res = await cli(["--backend", "overlay", "init"]);
    assert.equal(res.code, 0, res.stderr);
    res = await cli(["apply", "base", `${t}/b.tar`]);
    assert.equal(res.code, 0, res.stderr);
    res = await cli(["apply", "child", "--parent", "base", `${t}/c.tar`]);
    assert.equal(res.code, 0, res.stderr);
    res = await cli(["create", "ctr", "--parent", "child", "--rw"]);
    assert.equal(res.code, 0, res.stderr);
    await fn(h);
  } finally {
    await unmountUnder(tmp.path);
    for (const r of restore) await r();
    if (userMade) {
      await run(["userdel", user]);
      await run(["groupdel", user]); // userdel removes it; only if it did not
    }
  }
}
