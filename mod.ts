/**
 * layerfs: a container layer store for Deno.
 *
 * @module
 */

export * from "./src/errors.ts";
