/**
 * `layerfs login` and `layerfs logout`: credentials for a registry in the
 * auth file podman uses (`$REGISTRY_AUTH_FILE`, else
 * `${XDG_RUNTIME_DIR}/containers/auth.json`), written crash-safely with mode
 * 0600. Login checks the credentials against the registry before storing
 * them. The password is read from standard input, never from an argument
 * (it would show in `ps`), and is never printed.
 *
 * The types here are structural copies of `_spec.ts`'s and `_commands.ts`'s
 * (which import this file), so the module graph stays acyclic.
 *
 * @module
 */

import { LayerfsError, UsageError } from "../errors.ts";
import type { Credentials } from "../registry/auth_file.ts";
import { parseReference } from "../image/reference.ts";
import { loadModule } from "../_load_module.ts";

const clientImpl = () =>
  loadModule<typeof import("../registry/client.ts")>(
    new URL("../registry/client.ts", import.meta.url),
  );
const authFileImpl = () =>
  loadModule<typeof import("../registry/auth_file.ts")>(
    new URL("../registry/auth_file.ts", import.meta.url),
  );

interface Spec {
  name: string;
  usage: string;
  summary: string;
  description?: string;
  options: Record<
    string,
    { type: "string" | "boolean"; short?: string; help: string }
  >;
  args: [number, number];
}

interface Context {
  values: Record<string, string | boolean | string[] | undefined>;
  args: string[];
  io: {
    env: (key: string) => string | undefined;
    uid: number;
    stdin: () => ReadableStream<Uint8Array>;
    isTerminal: { stdin: boolean };
  };
}

interface Result {
  json: unknown;
  text?: string;
}

const insecure = {
  type: "boolean" as const,
  help:
    "--insecure        allow plain HTTP to this registry (loopback registries always may)",
};

/** The commands' entries for the CLI's table (`_spec.ts`). */
export const LOGIN_COMMANDS: Spec[] = [
  {
    name: "login",
    usage: "HOST --username U --password-stdin [--insecure]",
    summary:
      "check credentials with a registry and store them in the auth file",
    description:
      "Writes $REGISTRY_AUTH_FILE, else ${XDG_RUNTIME_DIR}/containers/auth.json (mode 0600),\n" +
      "as podman login does; docker's ~/.docker/config.json is read, never written.",
    options: {
      username: {
        type: "string",
        short: "u",
        help: "-u, --username U  the user name",
      },
      "password-stdin": {
        type: "boolean",
        help:
          "--password-stdin  read the password (or token) from standard input",
      },
      insecure,
    },
    args: [1, 1],
  },
  {
    name: "logout",
    usage: "HOST",
    summary: "remove a registry's credentials from the auth file",
    options: {},
    args: [1, 1],
  },
];

/** `HOST[/namespace]` as typed (URL forms accepted): the auth file key and the host. */
function registryKey(arg: string): { key: string; host: string } {
  const key = arg.replace(/^https?:\/\//, "").replace(/\/+$/, "");
  const host = key.split("/")[0];
  // Validates the host as a reference's host would be.
  const ref = parseReference(`${host}/layerfs-login-check`);
  if (ref.host !== host && !(host === "index.docker.io")) {
    throw new UsageError(
      `${
        JSON.stringify(arg)
      } is not a registry host; pass HOST[:PORT], e.g. ghcr.io or localhost:5000`,
    );
  }
  return {
    key: key.replace(/^index\.docker\.io/, "docker.io"),
    host: ref.host,
  };
}

async function readPassword(
  stdin: ReadableStream<Uint8Array>,
): Promise<string> {
  const bytes = new Uint8Array(await new Response(stdin).arrayBuffer());
  if (bytes.length > 64 << 10) {
    throw new UsageError("The password on standard input is over 64 KiB");
  }
  return new TextDecoder().decode(bytes).replace(/\r?\n$/, "");
}

/** The commands' implementations for the CLI's table (`_commands.ts`). */
export const loginCommands: Record<string, (ctx: Context) => Promise<Result>> =
  {
    login: async (ctx) => {
      const { key, host } = registryKey(ctx.args[0]);
      const username = ctx.values.username;
      if (typeof username !== "string" || username === "") {
        throw new UsageError("Missing --username U");
      }
      if (ctx.values["password-stdin"] !== true) {
        throw new UsageError(
          "Pass --password-stdin and the password on standard input (never as an argument)",
        );
      }
      if (ctx.io.isTerminal.stdin) {
        throw new UsageError(
          '--password-stdin reads a pipe or file, not a terminal: echo "$TOKEN" | layerfs login ...',
        );
      }
      const password = await readPassword(ctx.io.stdin());
      if (password === "") {
        throw new UsageError("The password on standard input is empty");
      }
      const creds: Credentials = { username, password };
      // Loaded here: _spec.ts takes this module's table for every command.
      const { RegistryClient } = await clientImpl();
      const { storeCredentials } = await authFileImpl();
      const client = new RegistryClient({
        env: ctx.io.env,
        uid: ctx.io.uid,
        credentials: () => Promise.resolve(creds),
        insecure: ctx.values.insecure === true ? [host] : [],
      });
      try {
        await client.ping(host);
      } finally {
        client.close();
      }
      const file = await storeCredentials(key, creds, {
        env: ctx.io.env,
        uid: ctx.io.uid,
      });
      return {
        json: { registry: key, username, file },
        text: `Login Succeeded (${key}, credentials in ${file})`,
      };
    },

    logout: async (ctx) => {
      const { key } = registryKey(ctx.args[0]);
      const { removeCredentials } = await authFileImpl();
      const r = await removeCredentials(key, {
        env: ctx.io.env,
        uid: ctx.io.uid,
      });
      if (!r.removed) {
        throw new LayerfsError(
          `Not logged in to ${key}: ${r.file} has no credentials for it`,
        );
      }
      return {
        json: { registry: key, file: r.file, removed: true },
        text: `Removed login credentials for ${key}`,
      };
    },
  };
