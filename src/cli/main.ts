#!/usr/bin/env node
/** The `dkeygen` executable. Exit status: 0 ok, 1 operational failure, 2 usage error. */
import { main } from "./program.js";

process.exitCode = await main(process.argv.slice(2));
