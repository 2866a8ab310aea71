/**
 * The attacks of issue 9, each performed as the unprivileged store owner
 * through sudo (the path the README installs), one test per hole. Each fails
 * against the helper before the fix (set LAYERFS_TEST_HELPER_SOURCES to an
 * old checkout to see it) and passes after.
 */
import assert from "node:assert/strict";
import { privilegedTest } from "../_privileged.ts";
import { run, withHelper } from "./_fixture.ts";

privilegedTest(
  "helper attack 1: a root-owned dir renamed into diff/<id> or work/<id> is refused",
  () =>
    withHelper(async ({ store, home, asUser, helper, refused }) => {
      // A root-owned dir inside the user's diff/ (as root leaves one when it
      // uses the store); the user may rename it within diff/, not edit it.
      await Deno.mkdir(`${store}/diff/planted`, { mode: 0o755 });
      await Deno.writeTextFile(`${store}/diff/planted/shadow`, "root's\n");
      let r = await asUser([
        "sh",
        "-c",
        `mv ${store}/diff/ctr ${store}/diff/ctr.own && mv ${store}/diff/planted ${store}/diff/ctr`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      await refused(["mount", store, "ctr"], /diff\/ctr is owned by uid 0/);
      r = await asUser([
        "sh",
        "-c",
        `mv ${store}/diff/ctr ${store}/diff/planted && mv ${store}/diff/ctr.own ${store}/diff/ctr`,
      ]);
      assert.equal(r.code, 0, r.stderr);

      // overlay's own work/ctr/work (made by the kernel as root) becomes
      // work/<id> of a layer "work" once the user swaps work/ for work/ctr.
      r = await helper(["mount", store, "ctr"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal((await helper(["umount", store, "ctr"])).code, 0);
      assert.equal((await Deno.stat(`${store}/work/ctr/work`)).uid, 0);
      r = await asUser([
        "sh",
        "-c",
        [
          `cd ${store}`,
          "mv work work.real",
          "mv work.real/ctr work",
          "cp layers/ctr layers/work",
          "cp meta/ctr meta/work",
          "mkdir diff/work mnt/work",
        ].join(" && "),
      ]);
      assert.equal(r.code, 0, r.stderr);
      await refused(["mount", store, "work"], /work\/work is owned by uid 0/);
      r = await asUser([
        "sh",
        "-c",
        [
          `cd ${store}`,
          "rm layers/work meta/work",
          "rmdir diff/work mnt/work",
          "mv work work.real/ctr",
          "mv work.real work",
        ].join(" && "),
      ]);
      assert.equal(r.code, 0, r.stderr);

      // A bind mount at diff/<parent> (of a dir the user owns, so only the
      // mount is wrong): refused by the helper, not left to the kernel.
      await asUser(["mkdir", `${home}/bound`]);
      assert.equal(
        (await run(["mount", "--bind", `${home}/bound`, `${store}/diff/base`]))
          .code,
        0,
      );
      try {
        await refused(["mount", store, "ctr"], /diff\/base.*another mount/);
      } finally {
        await run(["umount", `${store}/diff/base`]);
      }
    }),
);

privilegedTest(
  "helper attack 2: renaming mnt/<id> away and back never gets an overlay outside <root>/mnt",
  () =>
    withHelper(async ({ t, store, home, user, asUser, helper, overlays }) => {
      const away = `${home}/ctr`;
      const stop = `${home}/stop`;
      // The racer: flips mnt/ctr out of the store and back, a bounded number
      // of times, until told to stop.
      const racer = new Deno.Command("sudo", {
        args: [
          "-u",
          user,
          "sh",
          "-c",
          `i=0; while [ $i -lt 20000 ] && [ ! -e ${stop} ]; do ` +
          `mv -T ${store}/mnt/ctr ${away} 2>/dev/null; ` +
          `mv -T ${away} ${store}/mnt/ctr 2>/dev/null; i=$((i+1)); done`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const outside: string[] = [];
      let mounted = 0;
      try {
        for (let round = 0; round < 40; round++) {
          const r = await helper(["mount", store, "ctr"]);
          for (const p of await overlays()) {
            if (!p.startsWith(`${store}/mnt/`)) outside.push(p);
          }
          if (outside.length) break;
          if (r.code === 0) {
            mounted++;
            const u = await helper(["umount", store, "ctr"]);
            assert.equal(u.code, 0, u.stdout + u.stderr);
          }
        }
      } finally {
        await asUser(["touch", stop]);
        await racer.status;
      }
      // Put mnt/ctr back if the racer stopped with it away.
      await asUser([
        "sh",
        "-c",
        `[ -d ${away} ] && mv -T ${away} ${store}/mnt/ctr; true`,
      ]);
      assert.deepEqual(outside, [], `an overlay landed outside ${t}/store/mnt`);
      // Not a timing assertion: the race is the test's, the helper must
      // merely never leave a mount elsewhere; it may well succeed sometimes.
      console.log(`  ${mounted} of 40 mounts succeeded during the race`);
      const r = await helper(["mount", store, "ctr"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal((await helper(["umount", store, "ctr"])).code, 0);
    }),
);

privilegedTest(
  "helper attack 3: one upper or work dir is never used by two overlays",
  () =>
    withHelper(async ({ store, asUser, helper, refused, overlays }) => {
      // Two mounts of one layer at once, 25 rounds.
      for (let round = 0; round < 25; round++) {
        const [a, b] = await Promise.all([
          helper(["mount", store, "ctr"]),
          helper(["mount", store, "ctr"]),
        ]);
        const views = (await overlays()).filter((p) =>
          p === `${store}/mnt/ctr`
        );
        assert.equal(
          [a, b].filter((r) => r.code === 0).length,
          1,
          `round ${round}: ${a.stdout} ${b.stdout}`,
        );
        assert.equal(
          views.length,
          1,
          `round ${round}: ${views.length} overlays`,
        );
        assert.equal((await helper(["umount", store, "ctr"])).code, 0);
      }
      // Without a race: diff/ctr renamed to diff/ctr2 while ctr is mounted.
      let r = await helper(["mount", store, "ctr"]);
      assert.equal(r.code, 0, r.stdout);
      const layer = (id: string, moves: string) =>
        asUser([
          "sh",
          "-c",
          [
            `cd ${store}`,
            moves,
            `cp layers/ctr layers/${id}`,
            `cp meta/ctr meta/${id}`,
            `mkdir mnt/${id}`,
          ].join(" && "),
        ]);
      r = await layer("ctr2", "mv diff/ctr diff/ctr2 && mkdir work/ctr2");
      assert.equal(r.code, 0, r.stderr);
      await refused(
        ["mount", store, "ctr2"],
        /in use by the overlay mounted at/,
      );
      // And the same with its work dir.
      r = await layer(
        "ctr3",
        "mv diff/ctr2 diff/ctr && mkdir diff/ctr3 && mv work/ctr work/ctr3",
      );
      assert.equal(r.code, 0, r.stderr);
      await refused(
        ["mount", store, "ctr3"],
        /in use by the overlay mounted at/,
      );
      r = await asUser([
        "sh",
        "-c",
        `cd ${store} && mv work/ctr3 work/ctr && rmdir diff/ctr3 work/ctr2 mnt/ctr2 mnt/ctr3 && rm layers/ctr2 layers/ctr3 meta/ctr2 meta/ctr3`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await helper(["umount", store, "ctr"])).code, 0);
    }),
);

privilegedTest(
  "helper attack 5: a reply that cannot be written undoes the mount, without a trace",
  () =>
    withHelper(async ({ store, asUser, helperBin, overlays }) => {
      const r = await asUser([
        "sh",
        "-c",
        `sudo -n ${helperBin} mount ${store} ctr > /dev/full`,
      ]);
      assert.equal(r.code, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
      assert.doesNotMatch(r.stderr, /Uncaught/);
      assert.match(r.stderr, /cannot write the reply.*was undone/);
      assert.deepEqual(await overlays(), []);
    }),
);
