#!/usr/bin/env node
import { MoerlError } from '@moerl/core';
import { createProgram } from './main.js';

try {
  await createProgram().parseAsync(process.argv);
} catch (error) {
  // Known problems get their message only; anything else keeps its stack for a bug report.
  if (MoerlError.isInstance(error)) process.stderr.write(`moerl: ${error.message}\n`);
  else process.stderr.write(`moerl: unexpected error\n${(error as Error)?.stack ?? String(error)}\n`);
  process.exitCode = 1;
}
