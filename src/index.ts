/** dkeygen's library entry: the same capabilities as the CLI, with types. */
export * from "./errors.js";
