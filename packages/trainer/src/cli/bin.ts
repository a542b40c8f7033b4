#!/usr/bin/env node
import { runCli } from './main.js';

const code = await runCli(process.argv);
// A command may have set its own status (e.g. 130 after a run stopped by Ctrl-C and checkpointed).
process.exitCode = code !== 0 ? code : (process.exitCode ?? 0);
