/**
 * The CLI's command table: names, options (in the form `_argv.ts` parses),
 * positional arity and help text. Data only; `_parse.ts` reads it.
 *
 * @module
 */

import { LOGIN_COMMANDS } from "./login.ts";
import { IMAGE_COMMANDS } from "./_image_spec.ts";
import { REGISTRY_COMMANDS } from "./_registry_commands.ts";

export type { CommandSpec, OptionSpec } from "./_types.ts";
import type { CommandSpec, OptionSpec } from "./_types.ts";
import { backendNames } from "../backends/registry.ts";

/** Options accepted before (or after) every command. */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  root: {
    type: "string",
    help:
      "--root DIR        store root (default: $LAYERFS_ROOT, /var/lib/layerfs as root, else ${XDG_DATA_HOME:-~/.local/share}/layerfs)",
  },
  backend: {
    type: "string",
    help: `--backend NAME    ${
      ["auto", ...backendNames()].join(" | ")
    } (default auto; fixed when the store is first initialised)`,
  },
  json: {
    type: "boolean",
    help: "--json            print one JSON document instead of text",
  },
  quiet: {
    type: "boolean",
    help:
      "--quiet           print only requested data (no confirmations, no progress)",
  },
  help: { type: "boolean", short: "h", help: "-h, --help        show help" },
  version: {
    type: "boolean",
    help: "--version         print the version (layerfs X.Y.Z)",
  },
};

const parent: OptionSpec = {
  type: "string",
  help: "--parent P        the layer's parent",
};

/** Every command, in help order. */
export const COMMANDS: CommandSpec[] = [
  {
    name: "init",
    usage: "",
    summary: "create the store (layerfs.json and its directories) if missing",
    options: {},
    args: [0, 0],
  },
  {
    name: "status",
    usage: "",
    summary: "show the backend, the root, the backing filesystem and counts",
    options: {},
    args: [0, 0],
  },
  {
    name: "create",
    usage: "ID [--parent P | --image REF] [--rw] [--mount-label L]",
    summary:
      "create an empty layer (read-only image layer, or --rw for a container's layer)",
    options: {
      parent,
      image: {
        type: "string",
        help: "--image REF       put the layer on that image's top layer",
      },
      rw: {
        type: "boolean",
        help: "--rw              make a read-write (container) layer",
      },
      "mount-label": {
        type: "string",
        help: "--mount-label L   SELinux context for the layer's mounts",
      },
    },
    args: [1, 1],
  },
  {
    name: "commit",
    usage: "RW_ID NEW_ID",
    summary:
      "turn a read-write (container) layer into a read-only layer NEW_ID (no copy; RW_ID is gone)",
    options: {},
    args: [2, 2],
  },
  {
    name: "usage",
    aliases: ["du"],
    usage: "ID",
    summary:
      "disk usage of the layer and of its whole chain (bytes allocated, inodes)",
    options: {},
    args: [1, 1],
  },
  {
    name: "rm",
    aliases: ["remove"],
    usage: "ID... [--force]",
    summary: "remove layers",
    description:
      "Prints each layer removed. --force removes ID even when mounted, and its descendants\n" +
      "first; a descendant that is mounted is refused (nothing of that ID is removed then).\n" +
      "A layer an image uses is always refused: remove the image with rmi. Every ID is\n" +
      "tried on its own; one that is refused is reported on its own line and the run exits 1.",
    options: {
      force: {
        type: "boolean",
        short: "f",
        help:
          "-f, --force       remove even when mounted or a parent of other layers",
      },
    },
    args: [1, 1000],
  },
  {
    name: "exists",
    usage: "ID",
    summary:
      "exit 0 when the layer exists, 1 when it does not (2: ID can be no layer id)",
    options: {},
    args: [1, 1],
  },
  {
    name: "ls",
    aliases: ["list"],
    usage: "",
    summary: "list layers with parent, kind and mount count",
    options: {},
    args: [0, 0],
  },
  {
    name: "mount",
    aliases: ["get"],
    usage: "ID [--mount-label L]",
    summary:
      "mount the layer's union view (once per store, counted) and print its path",
    options: {
      "mount-label": {
        type: "string",
        help: "--mount-label L   SELinux context for the mount",
      },
    },
    args: [1, 1],
  },
  {
    name: "umount",
    aliases: ["put", "unmount"],
    usage: "ID",
    summary: "release one mount reference; the last one unmounts",
    options: {},
    args: [1, 1],
  },
  {
    name: "apply",
    usage: "ID [--parent P] [FILE|-]",
    summary:
      "create layer ID from an OCI layer tar (gzip/zstd detected); prints its size",
    description: "Reads FILE, or standard input when FILE is - or missing.",
    options: { parent },
    args: [1, 2],
  },
  {
    name: "diff",
    usage: "ID [--parent P] [-o FILE] [--compress gzip|zstd]",
    summary: "write the layer's changes as an OCI layer tar",
    description:
      "Writes to FILE, or to standard output when -o is missing or - (refused when that is a terminal).",
    options: {
      parent,
      output: {
        type: "string",
        short: "o",
        help: "-o, --output FILE write the tar to FILE",
      },
      compress: {
        type: "string",
        help: "--compress KIND   gzip | zstd (default: none)",
      },
    },
    args: [1, 1],
  },
  {
    name: "changes",
    usage: "ID [--parent P]",
    summary: 'list changed paths: "A /path", "C /path", "D /path"',
    description:
      "A backslash and control characters in a path are escaped as GNU tar does (\\\\, \\n,\n" +
      "\\177), so every line is one change; --json gives the paths as they are.",
    options: { parent },
    args: [1, 1],
  },
  {
    name: "size",
    usage: "ID [--parent P]",
    summary: "bytes of regular files in the layer's own content",
    options: { parent },
    args: [1, 1],
  },
  {
    name: "cleanup",
    usage: "",
    summary: "unmount everything this store mounted",
    options: {},
    args: [0, 0],
  },
  {
    name: "check",
    usage: "[--repair]",
    summary: "verify the store on disk; --repair fixes what is safe to fix",
    description:
      "Finds layers whose parent is missing, staging and -removing leftovers, mount counts\n" +
      "without mounts, mounts without counts, and diff/ dirs without layers/ metadata.\n" +
      "Exit 0 when nothing is wrong (or all was repaired), 1 otherwise.",
    options: {
      repair: {
        type: "boolean",
        help:
          "--repair          sweep leftovers, drop stale counts, unmount orphan mounts",
      },
    },
    args: [0, 0],
  },
  ...IMAGE_COMMANDS,
  ...REGISTRY_COMMANDS,
  {
    name: "helper",
    usage: "install [--group G] [--path BIN] | doctor",
    summary: "set up or check the privileged mount helper (see README)",
    description:
      "install: writes /etc/layerfs/helper.json and /etc/sudoers.d/layerfs (checked with\n" +
      "         visudo -cf) so members of G may run the helper through sudo without a password.\n" +
      "doctor:  checks that setup, the config's permissions, and that the helper binary is\n" +
      "         neither setuid nor given file capabilities.",
    options: {
      group: {
        type: "string",
        help:
          "--group G         group allowed to use the helper (default: layerfs)",
      },
      path: {
        type: "string",
        help:
          "--path BIN        the helper binary (default: /usr/local/bin/layerfs-helper)",
      },
      store: {
        type: "string",
        multiple: true,
        help:
          "--store DIR       a store root members of G may mount (repeatable)",
      },
    },
    args: [1, 1],
  },
  ...LOGIN_COMMANDS,
];

/** Finds a command by name or alias. */
export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases?.includes(name));
}

/** Help text of one command. */
export function commandHelp(c: CommandSpec): string {
  const lines = [
    `Usage: layerfs [global options] ${c.name}${c.usage ? " " + c.usage : ""}`,
    "",
    c.summary.charAt(0).toUpperCase() + c.summary.slice(1) + ".",
  ];
  if (c.description) lines.push(c.description);
  if (c.aliases?.length) lines.push(`Also: ${c.aliases.join(", ")}.`);
  const opts = Object.values(c.options);
  if (opts.length) {
    lines.push("", "Options:", ...opts.map((o) => "  " + o.help));
  }
  lines.push(
    "",
    "Global options:",
    ...Object.values(GLOBAL_OPTIONS).map((o) => "  " + o.help),
  );
  return lines.join("\n") + "\n";
}

/** Help text of the whole CLI. */
export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "layerfs: a container layer store (overlay, aufs, vfs)",
    "",
    `Usage: layerfs [--root DIR] [--backend ${
      ["auto", ...backendNames()].join("|")
    }] [--json] [--quiet] <command> [args]`,
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Global options:",
    ...Object.values(GLOBAL_OPTIONS).map((o) => "  " + o.help),
    "",
    'Run "layerfs <command> --help" for a command\'s options.',
  ].join("\n") + "\n";
}
