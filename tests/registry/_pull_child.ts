// Child process of the pull tests: pulls one image into a store, printing
// each progress event as a JSON line, then the result as the last line.
import { openStore, pullImage } from "../../mod.ts";

const [root, ref, backend] = Deno.args;
const store = await openStore({
  root,
  // An existing store keeps its backend; "auto" opens whichever it is.
  backend: (backend ?? "auto") as "auto",
});
const enc = new TextEncoder();
const img = await pullImage(store, ref, {
  clientOptions: { credentials: () => Promise.resolve(undefined) },
  onProgress: (p) =>
    Deno.stdout.writeSync(enc.encode(JSON.stringify({ progress: p }) + "\n")),
});
store.close();
console.log(JSON.stringify({ result: img }));
