/** The conformance suite on the vfs backend. */
import { openStore } from "../../mod.ts";
import { backendSuite } from "./suite/suite.ts";

backendSuite("vfs", (root) => openStore({ root, backend: "vfs" }));
