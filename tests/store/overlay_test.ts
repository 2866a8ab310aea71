/** The conformance suite on the overlay backend. */
import { openStore } from "../../mod.ts";
import { backendSuite } from "./suite/suite.ts";

backendSuite("overlay", (root) => openStore({ root, backend: "overlay" }));
