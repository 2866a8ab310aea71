/** The conformance suite on the aufs backend. */
import { openStore } from "../../mod.ts";
import { backendSuite } from "./suite/suite.ts";

backendSuite("aufs", (root) => openStore({ root, backend: "aufs" }));
