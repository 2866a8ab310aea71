/**
 * Who is calling the helper, and is that caller allowed to use a store?
 *
 * Under sudo the helper runs as root and sudo tells it the invoking user in
 * SUDO_UID/SUDO_GID (sudo sets them itself after env_reset, so a caller
 * cannot forge them). Run directly by root, the caller is root. Anyone else
 * is refused: the helper is never setuid.
 *
 * Names are resolved from /etc/passwd and /etc/group (files only: users that
 * exist only in LDAP/SSSD must be listed by numeric uid/gid).
 *
 * @module
 */

import { HelperError } from "../src/errors.ts";
import type { AllowedStore } from "./config.ts";

/** The identity the helper acts for. */
export interface Caller {
  /** Caller uid (0 when root runs the helper directly). */
  uid: number;
  /** Caller primary gid. */
  gid: number;
}

function parseId(v: string | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]{1,10}$/.test(v) || Number(v) > 0xfffffffe) {
    throw new HelperError(`${what} is not a valid id: ${JSON.stringify(v)}`);
  }
  return Number(v);
}

/**
 * Works out the caller from the effective uid and sudo's variables.
 *
 * @param euid The helper's effective uid.
 * @param env Environment lookup.
 * @returns The caller.
 * @throws {HelperError} when not running as root.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { callerFrom } from "./identity.ts";
 * const env = (k: string) => ({ SUDO_UID: "1000", SUDO_GID: "1000" } as Record<string, string>)[k];
 * assert.deepEqual(callerFrom(0, env), { uid: 1000, gid: 1000 });
 * ```
 */
export function callerFrom(
  euid: number,
  env: (key: string) => string | undefined,
): Caller {
  if (euid !== 0) {
    throw new HelperError(
      `layerfs-helper must run as root through sudo (it is running as uid ${euid}); ` +
        `it is never installed setuid: run "layerfs helper doctor"`,
    );
  }
  const uid = parseId(env("SUDO_UID"), "SUDO_UID");
  const gid = parseId(env("SUDO_GID"), "SUDO_GID");
  if (uid === undefined) return { uid: 0, gid: 0 };
  return { uid, gid: gid ?? uid };
}

/** Parsed /etc/passwd and /etc/group (the parts the helper needs). */
export interface Accounts {
  /** User name to uid. */
  users: Map<string, number>;
  /** uid to user name. */
  names: Map<number, string>;
  /** Group name to gid. */
  groups: Map<string, number>;
  /** gid to member user names (supplementary membership). */
  members: Map<number, string[]>;
  /** User name to primary gid. */
  primary: Map<string, number>;
}

/**
 * Parses passwd and group file contents.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAccounts } from "./identity.ts";
 * const a = parseAccounts("alice:x:1000:1000::/home/alice:/bin/sh\n", "layerfs:x:990:alice\n");
 * assert.equal(a.users.get("alice"), 1000);
 * assert.equal(a.groups.get("layerfs"), 990);
 * assert.deepEqual(a.members.get(990), ["alice"]);
 * ```
 */
export function parseAccounts(passwd: string, group: string): Accounts {
  const a: Accounts = {
    users: new Map(),
    names: new Map(),
    groups: new Map(),
    members: new Map(),
    primary: new Map(),
  };
  for (const line of passwd.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || !/^[0-9]+$/.test(f[2])) continue;
    a.users.set(f[0], Number(f[2]));
    if (!a.names.has(Number(f[2]))) a.names.set(Number(f[2]), f[0]);
    a.primary.set(f[0], Number(f[3]));
  }
  for (const line of group.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || !/^[0-9]+$/.test(f[2])) continue;
    a.groups.set(f[0], Number(f[2]));
    a.members.set(
      Number(f[2]),
      f[3].split(",").map((s) => s.trim()).filter(Boolean),
    );
  }
  return a;
}

/** Reads /etc/passwd and /etc/group. */
export function readAccounts(): Accounts {
  return parseAccounts(
    Deno.readTextFileSync("/etc/passwd"),
    Deno.readTextFileSync("/etc/group"),
  );
}

function resolveId(
  v: string,
  byName: Map<string, number>,
): number | undefined {
  return /^[0-9]+$/.test(v) ? Number(v) : byName.get(v);
}

/**
 * Whether `caller` may use `store` per its users/groups lists. Root always may.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { callerAllowed, parseAccounts } from "./identity.ts";
 * const a = parseAccounts("bob:x:1001:1001::/:/bin/sh\n", "layerfs:x:990:bob\n");
 * const store = { root: "/srv/s", users: [], groups: ["layerfs"] };
 * assert.equal(callerAllowed({ uid: 1001, gid: 1001 }, store, a), true);
 * assert.equal(callerAllowed({ uid: 1002, gid: 1002 }, store, a), false);
 * ```
 */
export function callerAllowed(
  caller: Caller,
  store: AllowedStore,
  accounts: Accounts,
): boolean {
  if (caller.uid === 0) return true;
  for (const u of store.users) {
    if (resolveId(u, accounts.users) === caller.uid) return true;
  }
  const name = accounts.names.get(caller.uid);
  for (const g of store.groups) {
    const gid = resolveId(g, accounts.groups);
    if (gid === undefined) continue;
    if (gid === caller.gid) return true;
    if (name !== undefined && accounts.primary.get(name) === gid) return true;
    if (name !== undefined && accounts.members.get(gid)?.includes(name)) {
      return true;
    }
  }
  return false;
}
