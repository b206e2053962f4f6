/**
 * `micro-fn invoke` on its own, for the start-up of a one-shot call: bin.mjs requires it (dist/cli/invoke.cjs, one
 * CommonJS file, build.mjs) instead of the whole CLI, so a call reads one file, not the CLI's graph of ES modules.
 * The same command (invoke.ts) and the same runner (runCommand) as `main`: the same flags, output and exit codes.
 */
import { runCommand } from './command.js';
import { command } from './invoke.js';

/** Runs `micro-fn invoke` with the arguments after `invoke`, then exits. */
export function main(argv: string[]): Promise<never> {
  return runCommand(command, argv);
}
