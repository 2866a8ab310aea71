/**
 * Authentication against the real registry: htpasswd basic auth and token
 * auth through a JWT issuer (401 without credentials, success with them,
 * tokens cached per scope, refreshed on expiry and after a 401, `token` and
 * `access_token` replies, mounts asking for the source's scope), and
 * `layerfs login` / `logout` writing the auth file.
 *
 * @module
 */

import assert from "node:assert/strict";
import { tempDir } from "../_privileged.ts";
import { RegistryUnauthorized } from "../../src/errors.ts";
import {
  type Credentials,
  parseReference,
  readCredentials,
  RegistryClient,
} from "../../src/registry/mod.ts";
import { OCI_MANIFEST } from "../../src/image/mod.ts";
import { type CliIo, runCli } from "../../src/cli/main.ts";
import { makePki, type Registry, startRegistry } from "./_registry.ts";
import { startIssuer } from "./_token_issuer.ts";
import { blobOf, collect, manifestFor } from "./_data.ts";

const USER = "alice";
const PASSWORD = "s3cret-Pa55word";
const good = (): Promise<Credentials | undefined> =>
  Promise.resolve({ username: USER, password: PASSWORD });
const none = () => Promise.resolve(undefined);

async function pushAndRead(
  client: RegistryClient,
  reg: Registry,
  repo: string,
) {
  const b = blobOf(20_000, 11);
  const cfg = blobOf(300, 12);
  await client.pushBlob(`${reg.host}/${repo}`, b, b.bytes);
  await client.pushBlob(`${reg.host}/${repo}`, cfg, cfg.bytes, {
    chunkSize: 100,
  });
  const ref = parseReference(`${reg.host}/${repo}:v1`);
  const bytes = manifestFor(OCI_MANIFEST, cfg, [b]);
  await client.putManifest(ref, OCI_MANIFEST, bytes);
  assert.deepEqual((await client.getManifest(ref)).bytes, bytes);
  assert.deepEqual(
    await collect(client.getBlob(`${reg.host}/${repo}`, b.digest, b.size)),
    b.bytes,
  );
}

async function unauthorized(
  p: Promise<unknown>,
): Promise<RegistryUnauthorized> {
  const e = await p.then(() => undefined, (x) => x);
  assert.ok(
    e instanceof RegistryUnauthorized,
    `expected RegistryUnauthorized, got ${e}`,
  );
  return e;
}

Deno.test("basic auth (htpasswd)", async (t) => {
  const reg = await startRegistry({
    htpasswd: { user: USER, password: PASSWORD },
  });
  try {
    await t.step("401 without credentials names the fix", async () => {
      const c = new RegistryClient({ credentials: none });
      const e = await unauthorized(
        c.getManifest(parseReference(`${reg.host}/app:v1`)),
      );
      assert.match(e.message, new RegExp(`layerfs login ${reg.host}`));
      assert.doesNotMatch(e.message, /rejected/);
      c.close();
    });
    await t.step(
      "wrong credentials: rejected, and the password is not in the message",
      async () => {
        const c = new RegistryClient({
          credentials: () =>
            Promise.resolve({ username: USER, password: "wrong-pw" }),
        });
        const e = await unauthorized(
          c.hasBlob(`${reg.host}/app`, blobOf(1, 1).digest),
        );
        assert.match(e.message, /rejected/);
        assert.doesNotMatch(e.message + String(e.stack), /wrong-pw/);
        c.close();
      },
    );
    await t.step("with credentials: push and pull", async () => {
      const c = new RegistryClient({ credentials: good });
      await pushAndRead(c, reg, "team/app");
      c.close();
    });
  } finally {
    await reg.stop();
  }
});

Deno.test("token auth (JWT issuer)", async (t) => {
  await using pkiTmp = await tempDir("layerfs-pki-");
  const pkiDir = pkiTmp.path;
  const pki = await makePki(pkiDir);
  const issuer = await startIssuer({
    cert: pki.tokenCert,
    key: pki.tokenKey,
    user: USER,
    password: PASSWORD,
    service: "layerfs-test",
    issuer: "layerfs-test-issuer",
  });
  const reg = await startRegistry({
    token: {
      realm: issuer.realm,
      service: "layerfs-test",
      issuer: "layerfs-test-issuer",
      rootCertBundle: pki.ca,
    },
  });
  try {
    await t.step(
      "401 without credentials (an anonymous token has no access)",
      async () => {
        const c = new RegistryClient({ credentials: none });
        const e = await unauthorized(
          c.getManifest(parseReference(`${reg.host}/app:v1`)),
        );
        assert.match(e.message, new RegExp(`layerfs login ${reg.host}`));
        assert.ok(issuer.requests.some((r) => !r.authenticated));
        c.close();
      },
    );

    await t.step(
      "a ping (what login does) takes a token without scope",
      async () => {
        issuer.requests.length = 0;
        const c = new RegistryClient({ credentials: good });
        await c.ping(reg.host);
        assert.deepEqual(issuer.requests, [{
          scopes: [],
          authenticated: true,
        }]);
        c.close();
        const w = new RegistryClient({
          credentials: () =>
            Promise.resolve({ username: USER, password: "bad" }),
        });
        const e = await unauthorized(w.ping(reg.host));
        assert.match(e.message, /rejected/);
        w.close();
      },
    );

    await t.step(
      "with credentials: push and pull; one token per scope",
      async () => {
        issuer.requests.length = 0;
        const c = new RegistryClient({ credentials: good });
        await pushAndRead(c, reg, "team/app");
        const scopes = issuer.requests.map((r) => r.scopes.join(" "));
        // pull for HEAD/GET, pull,push for uploads: each fetched once, then cached.
        assert.deepEqual([...new Set(scopes)].sort(), [
          "repository:team/app:pull",
          "repository:team/app:pull,push",
        ]);
        assert.equal(scopes.length, 2, `token requests: ${scopes.join(" | ")}`);
        c.close();
      },
    );

    await t.step(
      "a short-lived token is refreshed once it expires",
      async () => {
        issuer.requests.length = 0;
        issuer.expiresIn = 2;
        let clock = Date.now();
        const c = new RegistryClient({ credentials: good, now: () => clock });
        const repo = `${reg.host}/team/app`;
        const d = blobOf(20_000, 11).digest;
        assert.equal(await c.hasBlob(repo, d), true);
        assert.equal(await c.hasBlob(repo, d), true);
        const before = issuer.requests.length;
        clock += 3_000;
        assert.equal(await c.hasBlob(repo, d), true);
        assert.equal(issuer.requests.length, before + 1);
        issuer.expiresIn = 300;
        c.close();
      },
    );

    await t.step(
      "a token the registry refuses is replaced after the 401",
      async () => {
        const c = new RegistryClient({ credentials: good });
        const d = blobOf(20_000, 11).digest;
        // Learn the challenge with one request, then make the next token bad.
        assert.equal(await c.hasBlob(`${reg.host}/team/app`, d), true);
        issuer.requests.length = 0;
        // The next token is expired for the registry, fresh by expires_in.
        issuer.expiredNext = 1;
        assert.equal(await c.hasBlob(`${reg.host}/team/other`, d), false);
        assert.equal(
          issuer.requests.length,
          2,
          "one refused token, one fresh one",
        );
        c.close();
      },
    );

    await t.step(
      "an access_token reply and a cross-repository mount",
      async () => {
        issuer.field = "access_token";
        issuer.requests.length = 0;
        const c = new RegistryClient({ credentials: good });
        const b = blobOf(20_000, 11);
        const r = await c.pushBlob(`${reg.host}/team/copy`, b, b.bytes, {
          mountFrom: ["team/app"],
        });
        assert.equal(r.how, "mounted");
        assert.ok(
          issuer.requests.some((q) =>
            q.scopes.includes("repository:team/app:pull") &&
            q.scopes.includes("repository:team/copy:pull,push")
          ),
          JSON.stringify(issuer.requests),
        );
        issuer.field = "token";
        c.close();
      },
    );
  } finally {
    await reg.stop();
    await issuer.stop();
  }
});

function cliIo(
  env: Record<string, string>,
  stdin: string,
): CliIo & { err: string[] } {
  const err: string[] = [];
  return {
    err,
    env: (k) => env[k],
    uid: 0,
    cwd: "/",
    stdin: () => ReadableStream.from([new TextEncoder().encode(stdin)]),
    stdout: () => Deno.stdout,
    stderr: (s) => void err.push(s),
    isTerminal: { stdin: false, stdout: false, stderr: false },
  };
}

Deno.test("layerfs login and logout", async () => {
  const reg = await startRegistry({
    htpasswd: { user: USER, password: PASSWORD },
  });
  const dir = await Deno.makeTempDir({ prefix: "layerfs-auth-" });
  const file = `${dir}/sub/auth.json`;
  const env = { REGISTRY_AUTH_FILE: file, HOME: dir };
  try {
    const out: string[] = [];
    // Wrong password: refused, nothing written, the password not printed.
    let io = cliIo(env, "nope-nope\n");
    assert.equal(
      await runCli(
        ["login", "--username", USER, "--password-stdin", reg.host],
        io,
        (s) => void out.push(s),
      ),
      1,
    );
    assert.equal(io.err.length, 1);
    assert.match(io.err[0], /rejected/);
    assert.doesNotMatch(io.err.join(""), /nope-nope/);
    await assert.rejects(Deno.stat(file), Deno.errors.NotFound);

    // Right password: stored with mode 0600, readable by the client.
    io = cliIo(env, PASSWORD + "\n");
    assert.equal(
      await runCli(
        ["--json", "login", "-u", USER, "--password-stdin", reg.host],
        io,
        (s) => void out.push(s),
      ),
      0,
    );
    assert.deepEqual(JSON.parse(out.at(-1)!), {
      registry: reg.host,
      username: USER,
      file,
    });
    assert.doesNotMatch(out.join(""), new RegExp(PASSWORD));
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    const stored = JSON.parse(await Deno.readTextFile(file));
    assert.deepEqual(Object.keys(stored.auths), [reg.host]);
    assert.deepEqual(
      await readCredentials(reg.host, "app", {
        env: (k) => env[k as keyof typeof env],
      }),
      {
        username: USER,
        password: PASSWORD,
      },
    );
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(`${dir}/sub`))).map((e) => e.name),
      ["auth.json"],
    );
    const c = new RegistryClient({ env: (k) => env[k as keyof typeof env] });
    await pushAndRead(c, reg, "cli/app");
    c.close();

    // Logout removes the entry (other keys kept); a second logout says so.
    io = cliIo(env, "");
    assert.equal(
      await runCli(["logout", reg.host], io, (s) => void out.push(s)),
      0,
    );
    assert.deepEqual(JSON.parse(await Deno.readTextFile(file)).auths, {});
    io = cliIo(env, "");
    assert.equal(
      await runCli(["logout", reg.host], io, (s) => void out.push(s)),
      1,
    );
    assert.match(io.err[0], /Not logged in/);

    // Usage: no --password-stdin.
    io = cliIo(env, "");
    assert.equal(
      await runCli(
        ["login", "-u", USER, reg.host],
        io,
        (s) => void out.push(s),
      ),
      2,
    );
  } finally {
    await reg.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
