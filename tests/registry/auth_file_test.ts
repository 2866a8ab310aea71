/**
 * Auth files: where they are, which entry wins, docker's key forms,
 * credential helpers refused by name, malformed files refused without
 * quoting secrets, and crash-safe writes (mode 0600, other keys kept, no
 * temp files left).
 *
 * @module
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { CredentialHelperUnsupported, LayerfsError } from "../../src/errors.ts";
import {
  authFilePath,
  authFilesToRead,
  readCredentials,
  removeCredentials,
  storeCredentials,
} from "../../src/registry/mod.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

async function withHome(
  fn: (
    home: string,
    env: (k: string) => string | undefined,
    vars: Record<string, string>,
  ) => Promise<void>,
) {
  const home = await Deno.makeTempDir({ prefix: "layerfs-home-" });
  const vars: Record<string, string> = {
    HOME: home,
    XDG_RUNTIME_DIR: `${home}/run`,
  };
  try {
    await fn(home, (k) => vars[k], vars);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

async function writeJson(path: string, v: unknown) {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(path, JSON.stringify(v));
}

Deno.test("auth file locations", () => {
  const env = (vars: Record<string, string>) => (k: string) => vars[k];
  assert.equal(
    authFilePath({
      env: env({
        REGISTRY_AUTH_FILE: "/x/a.json",
        XDG_RUNTIME_DIR: "/run/user/1",
      }),
    }),
    "/x/a.json",
  );
  assert.equal(
    authFilePath({ env: env({ XDG_RUNTIME_DIR: "/run/user/1" }) }),
    "/run/user/1/containers/auth.json",
  );
  assert.equal(
    authFilePath({ env: env({}), uid: 0 }),
    "/run/containers/0/auth.json",
  );
  assert.equal(
    authFilePath({ env: env({ HOME: "/home/u" }), uid: 1000 }),
    "/home/u/.config/containers/auth.json",
  );
  assert.deepEqual(
    authFilesToRead({ env: env({ HOME: "/h", XDG_RUNTIME_DIR: "/r" }) }),
    [
      "/r/containers/auth.json",
      "/h/.config/containers/auth.json",
      "/h/.docker/config.json",
    ],
  );
});

Deno.test("reading credentials: order, key forms, namespaces", () =>
  withHome(async (home, env) => {
    assert.equal(await readCredentials("ghcr.io", "o/r", { env }), undefined);
    await writeJson(`${home}/.docker/config.json`, {
      auths: {
        "https://index.docker.io/v1/": { auth: b64("hub:hubpw") },
        "ghcr.io": { auth: b64("docker:dpw") },
        "quay.io/team": { auth: b64("team:tpw") },
        "quay.io": { auth: b64("quay:qpw") },
      },
    });
    assert.deepEqual(
      await readCredentials("docker.io", "library/alpine", { env }),
      { username: "hub", password: "hubpw" },
    );
    assert.deepEqual(await readCredentials("quay.io", "team/app", { env }), {
      username: "team",
      password: "tpw",
    });
    assert.deepEqual(await readCredentials("quay.io", "teams/app", { env }), {
      username: "quay",
      password: "qpw",
    });
    // The runtime auth file comes first.
    await writeJson(`${home}/run/containers/auth.json`, {
      auths: { "ghcr.io": { auth: b64("podman:p:w") } },
    });
    assert.deepEqual(await readCredentials("ghcr.io", "o/r", { env }), {
      username: "podman",
      password: "p:w",
    });
  }));

Deno.test("credential helpers are refused by name; a credsStore only for its hosts", () =>
  withHome(async (home, env) => {
    await writeJson(`${home}/.docker/config.json`, {
      auths: { "desk.io": {} },
      credHelpers: { "gcr.io": "gcloud" },
      credsStore: "desktop",
    });
    await assert.rejects(
      readCredentials("gcr.io", "p/i", { env }),
      (e: Error) => {
        assert.ok(e instanceof CredentialHelperUnsupported);
        assert.equal(e.helper, "docker-credential-gcloud");
        assert.match(e.message, /docker-credential-gcloud/);
        assert.match(e.message, /layerfs login gcr\.io/);
        return true;
      },
    );
    await assert.rejects(
      readCredentials("desk.io", "x", { env }),
      /docker-credential-desktop/,
    );
    assert.equal(await readCredentials("other.io", "x", { env }), undefined);
  }));

Deno.test("malformed auth files are refused without quoting them", () =>
  withHome(async (home, env) => {
    await writeJson(`${home}/.docker/config.json`, {
      auths: { "a.io": { auth: b64("no-colon-secret") } },
    });
    await assert.rejects(readCredentials("a.io", "x", { env }), (e: Error) => {
      assert.ok(e instanceof LayerfsError);
      assert.doesNotMatch(e.message, /no-colon-secret/);
      return true;
    });
    // Not base64 (a stray character, padding past the end): refused as
    // docker's strict decoder refuses it, not decoded around.
    for (const auth of [b64("u:se") + "!" + b64("cret"), b64("u:pw") + "="]) {
      await writeJson(`${home}/.docker/config.json`, {
        auths: { "a.io": { auth } },
      });
      await assert.rejects(
        readCredentials("a.io", "x", { env }),
        (e: Error) => {
          assert.ok(e instanceof LayerfsError);
          assert.match(e.message, /not base64 of "user:password"/);
          assert.doesNotMatch(e.message, /dTpzZQ|cret/);
          return true;
        },
      );
    }
    await Deno.writeTextFile(
      `${home}/.docker/config.json`,
      '{"auths": {"a.io": {"auth": "c2VjcmV0"',
    );
    await assert.rejects(readCredentials("a.io", "x", { env }), (e: Error) => {
      assert.match(e.message, /not a valid JSON object/);
      assert.doesNotMatch(e.message, /c2VjcmV0/);
      return true;
    });
  }));

Deno.test("store and remove: mode 0600, other keys kept, nothing left behind", () =>
  withHome(async (home, env) => {
    const file = `${home}/run/containers/auth.json`;
    await writeJson(file, {
      auths: { "keep.io": { auth: b64("k:k") } },
      credHelpers: { "x.io": "pass" },
    });
    assert.equal(
      await storeCredentials("new.io:5000", { username: "u", password: "p" }, {
        env,
      }),
      file,
    );
    assert.equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    const doc = JSON.parse(await Deno.readTextFile(file));
    assert.deepEqual(Object.keys(doc.auths).sort(), ["keep.io", "new.io:5000"]);
    assert.deepEqual(doc.credHelpers, { "x.io": "pass" });
    assert.deepEqual(await readCredentials("new.io:5000", "a", { env }), {
      username: "u",
      password: "p",
    });
    assert.deepEqual(await removeCredentials("new.io:5000", { env }), {
      removed: true,
      file,
    });
    assert.deepEqual(await removeCredentials("new.io:5000", { env }), {
      removed: false,
      file,
    });
    assert.deepEqual(
      Object.keys(JSON.parse(await Deno.readTextFile(file)).auths),
      ["keep.io"],
    );
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(`${home}/run/containers`))).map((e) =>
        e.name
      ),
      ["auth.json"],
    );
    // A file that is not JSON is not overwritten.
    await Deno.writeTextFile(file, "garbage");
    await assert.rejects(
      storeCredentials("a.io", { username: "u", password: "p" }, { env }),
      /not a valid JSON/,
    );
    assert.equal(await Deno.readTextFile(file), "garbage");
  }));
