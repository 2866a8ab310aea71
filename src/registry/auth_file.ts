/**
 * Registry credentials in the files podman and docker keep them in
 * (containers-auth.json(5)): read for requests, written by `layerfs login`.
 *
 * Read, first match wins:
 * 1. `$REGISTRY_AUTH_FILE`, else `${XDG_RUNTIME_DIR}/containers/auth.json`
 *    (as root without XDG_RUNTIME_DIR: `/run/containers/0/auth.json`);
 * 2. `~/.config/containers/auth.json`;
 * 3. `~/.docker/config.json`.
 *
 * Entries are `{"auths": {"KEY": {"auth": base64("user:password")}}}`; KEY is
 * a host or `host/namespace[/repo]` (the longest matching key wins), and
 * docker's URL forms (`https://index.docker.io/v1/`) are understood. A file
 * whose `credHelpers` names a helper for the host, or that has a `credsStore`
 * and an (empty) entry for the host, keeps the secret in a program layerfs
 * does not run: that is a {@link CredentialHelperUnsupported} error.
 *
 * Writes (login, logout) go to the file of step 1: a temporary file, fsync,
 * rename, fsync of the directory; mode 0600 in a 0700 directory, other keys
 * of the file kept.
 *
 * @module
 */

import { nodePath } from "../_node.ts";
import { CredentialHelperUnsupported, LayerfsError } from "../errors.ts";
import { syncDir } from "../store/_atomic.ts";
import { DOCKER_HUB } from "../image/reference.ts";

/** A user name and password (or token) for a registry. */
export interface Credentials {
  /** User name. */
  username: string;
  /** Password or personal access token. */
  password: string;
}

/** Where the auth files are: the process environment, passed in. */
export interface AuthFileEnv {
  /** Environment lookup (`REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, `HOME`). */
  env: (key: string) => string | undefined;
  /** Effective uid (picks `/run/containers/0` for root). @default 0 */
  uid?: number;
}

/** Largest auth file read (a hostile or corrupt file is refused, not parsed). */
const MAX_AUTH_FILE = 4 << 20;

/**
 * The file `layerfs login` writes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { authFilePath } from "./auth_file.ts";
 * const env = (k: string) => ({ XDG_RUNTIME_DIR: "/run/user/1000" } as Record<string, string>)[k];
 * assert.equal(authFilePath({ env }), "/run/user/1000/containers/auth.json");
 * ```
 */
export function authFilePath({ env, uid = 0 }: AuthFileEnv): string {
  const explicit = env("REGISTRY_AUTH_FILE");
  if (explicit) return explicit;
  const runtime = env("XDG_RUNTIME_DIR");
  if (runtime) return `${runtime}/containers/auth.json`;
  if (uid === 0) return "/run/containers/0/auth.json";
  return `${env("HOME") ?? "/"}/.config/containers/auth.json`;
}

/** Every file credentials are read from, in order. */
export function authFilesToRead(e: AuthFileEnv): string[] {
  const home = e.env("HOME");
  const files = [authFilePath(e)];
  if (home) {
    files.push(`${home}/.config/containers/auth.json`);
    files.push(`${home}/.docker/config.json`);
  }
  return [...new Set(files)];
}

/** A key of `auths` as a plain `host[/path]` (docker's URL forms stripped). */
function normaliseKey(key: string): string {
  let k = key.replace(/^https?:\/\//, "");
  if (/^[^/]+\/v[12]\/?$/.test(k)) k = k.slice(0, k.indexOf("/"));
  k = k.replace(/\/+$/, "");
  const slash = k.indexOf("/");
  const host = slash < 0 ? k : k.slice(0, slash);
  if (
    host === "index.docker.io" || host === "registry-1.docker.io"
  ) return DOCKER_HUB + (slash < 0 ? "" : k.slice(slash));
  return k;
}

interface AuthFileJson {
  auths?: Record<string, { auth?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [k: string]: unknown;
}

async function readJsonFile(path: string): Promise<AuthFileJson | undefined> {
  let bytes: Uint8Array;
  try {
    const st = await Deno.stat(path);
    if (!st.isFile) return undefined;
    if (st.size > MAX_AUTH_FILE) {
      throw new LayerfsError(
        `Auth file ${path} is larger than ${MAX_AUTH_FILE} bytes; it is not an auth file, remove or fix it`,
      );
    }
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof LayerfsError) throw e;
    throw new LayerfsError(
      `Cannot read auth file ${path} (${
        (e as Error).message
      }); check its permissions`,
      { cause: e },
    );
  }
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes));
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      throw new Error("not a JSON object");
    }
    return v as AuthFileJson;
  } catch {
    // The message never quotes the file: it holds secrets.
    throw new LayerfsError(
      `Auth file ${path} is not a valid JSON object; fix it or remove it and run "layerfs login" again`,
    );
  }
}

/**
 * An entry's `auth` (base64 of "user:password") as text, or undefined when
 * it is not base64: refused, as docker's strict decoder does, not read
 * around stray characters.
 */
function decodeAuth(auth: string): string | undefined {
  try {
    return new TextDecoder().decode(Uint8Array.fromBase64(auth));
  } catch {
    return undefined;
  }
}

function lookupIn(
  file: string,
  json: AuthFileJson,
  host: string,
  repository: string | undefined,
): Credentials | undefined {
  const helpers = json.credHelpers ?? {};
  for (const [k, name] of Object.entries(helpers)) {
    if (normaliseKey(k) === host && typeof name === "string" && name) {
      throw new CredentialHelperUnsupported(host, name, file);
    }
  }
  const full = repository ? `${host}/${repository}` : host;
  let best: { key: string; auth?: string } | undefined;
  for (const [k, v] of Object.entries(json.auths ?? {})) {
    const key = normaliseKey(k);
    if (full !== key && !full.startsWith(key + "/")) continue;
    if (best && best.key.length >= key.length) continue;
    best = { key, auth: typeof v?.auth === "string" ? v.auth : undefined };
  }
  if (!best) return undefined;
  if (!best.auth) {
    // docker leaves `{}` under auths when a credsStore holds the secret.
    if (typeof json.credsStore === "string" && json.credsStore) {
      throw new CredentialHelperUnsupported(host, json.credsStore, file);
    }
    return undefined;
  }
  const decoded = decodeAuth(best.auth);
  const colon = decoded?.indexOf(":") ?? -1;
  if (decoded === undefined || colon <= 0) {
    throw new LayerfsError(
      `Auth file ${file}: the entry for ${best.key} is not base64 of "user:password"; ` +
        `run "layerfs login ${host}" again`,
    );
  }
  return {
    username: decoded.slice(0, colon),
    password: decoded.slice(colon + 1),
  };
}

/**
 * The stored credentials for `host` (and `repository`, for namespaced keys).
 *
 * @returns The credentials, or undefined when no file has an entry.
 * @throws {CredentialHelperUnsupported} when a credential helper holds them.
 * @throws {LayerfsError} for an unreadable or malformed auth file.
 * @example
 * ```ts ignore
 * import { readCredentials } from "./auth_file.ts";
 * const creds = await readCredentials("ghcr.io", "me/app", { env: (k) => Deno.env.get(k) });
 * ```
 */
export async function readCredentials(
  host: string,
  repository: string | undefined,
  e: AuthFileEnv,
): Promise<Credentials | undefined> {
  for (const file of authFilesToRead(e)) {
    const json = await readJsonFile(file);
    if (!json) continue;
    const c = lookupIn(file, json, host, repository);
    if (c) return c;
  }
  return undefined;
}

/** Writes `json` to `path` crash-safely with mode 0600. */
async function writeAuthFile(path: string, json: AuthFileJson): Promise<void> {
  const dir = nodePath().dirname(path);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const f = await Deno.open(tmp, {
      write: true,
      createNew: true,
      mode: 0o600,
    });
    try {
      const bytes = new TextEncoder().encode(
        JSON.stringify(json, null, "\t") + "\n",
      );
      for (let off = 0; off < bytes.length;) {
        off += await f.write(bytes.subarray(off));
      }
      await f.sync();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new LayerfsError(
      `Cannot write auth file ${path} (${
        (e as Error).message
      }); check the directory's permissions and free space`,
      { cause: e },
    );
  }
  await syncDir(dir);
}

/**
 * Stores credentials for `key` (a host, or `host/namespace`) in the auth file.
 *
 * @returns The file written.
 * @example
 * ```ts ignore
 * import { storeCredentials } from "./auth_file.ts";
 * await storeCredentials("localhost:5000", { username: "u", password: "p" }, { env: (k) => Deno.env.get(k) });
 * ```
 */
export async function storeCredentials(
  key: string,
  creds: Credentials,
  e: AuthFileEnv,
): Promise<string> {
  const path = authFilePath(e);
  const json = (await readJsonFile(path)) ?? {};
  const auths = { ...(json.auths ?? {}) };
  auths[key] = {
    auth: new TextEncoder().encode(`${creds.username}:${creds.password}`)
      .toBase64(),
  };
  await writeAuthFile(path, { ...json, auths });
  return path;
}

/**
 * Removes the entry for `key` from the auth file.
 *
 * @returns Whether there was one (and the file concerned).
 */
export async function removeCredentials(
  key: string,
  e: AuthFileEnv,
): Promise<{ removed: boolean; file: string }> {
  const path = authFilePath(e);
  const json = await readJsonFile(path);
  const auths = { ...(json?.auths ?? {}) };
  const keys = Object.keys(auths).filter((k) =>
    normaliseKey(k) === normaliseKey(key)
  );
  if (!json || keys.length === 0) return { removed: false, file: path };
  for (const k of keys) delete auths[k];
  await writeAuthFile(path, { ...json, auths });
  return { removed: true, file: path };
}
