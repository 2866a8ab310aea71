/**
 * A module whose top level needs env access: tests/startup_test.ts loads it
 * through `loadModule` without that permission, to show that such an error
 * passes through rather than becoming a PermissionRequired.
 *
 * @module
 */

/** HOME, read when the module loads. */
export const home: string | undefined = Deno.env.get("HOME");
