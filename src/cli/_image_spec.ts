/**
 * The image commands' entries of the CLI's command table (data only).
 *
 * @module
 */

import type { CommandSpec } from "./_types.ts";
import { PARALLEL_OPTION } from "./_parallel.ts";

/** The image commands' table entries. */
export const IMAGE_COMMANDS: CommandSpec[] = [
  {
    name: "load",
    usage:
      "[FILE|DIR|-] [--platform P] [--ref NAME] [--tag NAME:TAG] [--parallel N]",
    summary:
      "load images from a docker-archive or OCI layout (dir or tar); prints each image's name and id",
    description:
      "Reads FILE or DIR, or standard input when - or missing (spooled to a temp file under\n" +
      "<root>/images/ first: blobs are read by offset). Layers are stored under their OCI\n" +
      "chain ids; those already present are reused. Every blob, DiffID, config and manifest\n" +
      "is verified while it streams; a mismatch loads nothing of that image.",
    options: {
      platform: {
        type: "string",
        help:
          "--platform P      os/arch[/variant] to pick from multi-platform images (default: the host's)",
      },
      ref: {
        type: "string",
        help:
          "--ref NAME        load only the image the archive names NAME: an OCI ref.name, bare\n" +
          "                  (v2, as in skopeo's oci:DIR:v2) or full, or a docker-archive tag",
      },
      tag: {
        type: "string",
        help:
          "--tag NAME:TAG    name the image so instead of the archive's names (one image only)",
      },
      parallel: PARALLEL_OPTION,
    },
    args: [0, 1],
  },
  {
    name: "images",
    usage: "[REF]",
    summary: "list images: name, id, top layer, size, created",
    description:
      "REF NAME (no tag or digest) lists every tag of that repository, as docker images\n" +
      "REPO does; NAME:TAG, a digest or an id lists only the image it names (every name of\n" +
      "it). A name without a registry finds docker's reading (alpine = docker.io/library/\n" +
      "alpine) and then podman's local one (localhost/alpine); rmi, save, push and create\n" +
      "--image look names up the same way (there NAME means NAME:latest).",
    options: {},
    args: [0, 1],
  },
  {
    name: "tag",
    usage: "REF NAME[:TAG]",
    summary:
      "give an image another name, as docker tag (NAME alone means NAME:latest)",
    description:
      "REF is read as rmi reads it (a name, sha256:ID, an id prefix, a manifest digest).\n" +
      "A name another image had moves to this one; that image keeps its other names.",
    options: {},
    args: [2, 2],
  },
  {
    name: "rmi",
    usage: "REF... [--force]",
    summary:
      "remove image names or images, and the layers nothing else uses any more",
    description:
      "REF is NAME:TAG (NAME means NAME:latest; short names as docker and podman read them:\n" +
      "alpine finds docker.io/library/alpine:latest, myimg finds localhost/myimg:latest),\n" +
      "sha256:ID, an id prefix (12+ hex) or a manifest digest (sha256:M, NAME@sha256:M).\n" +
      "A name of an image that has other names is only untagged; an id removes the image.\n" +
      "An image a container layer is built on is refused (as docker and podman do) unless\n" +
      "--force: then the image goes and its layers stay while the container uses them.",
    options: {
      force: {
        type: "boolean",
        short: "f",
        help:
          "-f, --force       remove it even when a container is built on it",
      },
    },
    args: [1, 1000],
  },
  {
    name: "prune",
    usage: "",
    summary:
      "remove image layers and blobs no image uses (what interrupted loads and pulls completed)",
    description:
      "An interrupted pull keeps the layers it completed, so the next pull of the image\n" +
      "fetches only the rest; this removes them instead. Only layers a load or pull made\n" +
      "(never a container or an apply, whatever its id) that no image names, nothing has\n" +
      "mounted and no other layer sits on go; layers a load or pull is working on are left. Blobs\n" +
      "kept by pulls (keepBlobs) that no image uses go too, unless a load or pull is\n" +
      "running. As `podman image prune`, it is the housekeeping step; `layerfs check`\n" +
      "lists the layers.",
    options: {},
    args: [0, 0],
  },
  {
    name: "save",
    usage: "REF... -o FILE [--format docker|oci] [--compress none|gzip|zstd]",
    summary:
      "write images to a docker-archive or oci-archive (layers as loaded, byte for byte)",
    description:
      "Each layer is rebuilt byte for byte from the tar-split record kept when it was loaded,\n" +
      "so DiffIDs and the image id stay the same. A layer without a record, or changed since,\n" +
      "is exported afresh: it gets a new DiffID, the saved config carries it and the image a\n" +
      "new id (both printed, with the reason). FILE appears only when complete (a failed or\n" +
      "interrupted save leaves nothing); a fifo or device is written in place.",
    options: {
      output: {
        type: "string",
        short: "o",
        help: "-o, --output FILE the archive to write (required)",
      },
      format: {
        type: "string",
        help:
          "--format F        docker (default: docker load/podman load read it) | oci (an oci-archive)",
      },
      compress: {
        type: "string",
        help:
          "--compress C      layer blobs: none (default) | gzip | zstd (new blob digests, same image id)",
      },
    },
    args: [1, 1000],
  },
];
