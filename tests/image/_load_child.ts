// Child process of the concurrency test: loads an image and prints what it extracted.
import { loadImage, openStore } from "../../mod.ts";

const [root, path] = Deno.args;
const store = await openStore({ root, backend: "overlay" });
const images = await loadImage(store, path);
store.close();
console.log(JSON.stringify(images));
