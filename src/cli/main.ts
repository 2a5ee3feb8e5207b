#!/usr/bin/env node
// Kinema command line: each subcommand lives in its own file and is registered here.
import { Command } from 'commander';
import { isKinemaError } from '../errors.js';
import { evalCommand, registerClipLoader } from './eval.js';
import { loadClipEmbedder } from '../models/clip/embedder.js';
import { generateCommand } from './generate.js';
import { trainCommand } from './train.js';
import { convertCommand } from './convert.js';
import { serveCommand } from './serve.js';
import { workerCommand } from './worker.js';

/**
 * The one line the CLI prints for a failed command: the message and, for a KinemaError, its code
 * (looked up in docs/errors.md). Anything else escaped a check and is a bug: say so, with the stack
 * available under KINEMA_DEBUG=1.
 */
const INTERNAL_ERROR = 'INTERNAL_ERROR';

export function cliErrorLine(err: unknown): string {
  if (isKinemaError(err)) return `kinema: ${err.message} [${err.code}]`;
  const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return `kinema: internal error (a bug; please report it, with KINEMA_DEBUG=1 for the stack): ${msg} [${INTERNAL_ERROR}]`;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('kinema')
    .description('Text-to-video diffusion engine (TypeScript → ONNX Runtime)')
    .version('0.1.0');
  program.addCommand(generateCommand());
  registerClipLoader(loadClipEmbedder);
  program.addCommand(evalCommand());
  program.addCommand(trainCommand());
  program.addCommand(convertCommand());
  program.addCommand(serveCommand());
  program.addCommand(workerCommand());
  return program;
}

const isMain = process.argv[1] !== undefined && /cli[\\/]main\.(ts|js)$/.test(process.argv[1]);
if (isMain) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      console.error(cliErrorLine(err));
      if (process.env['KINEMA_DEBUG'] && err instanceof Error) console.error(err.stack);
      process.exit(1);
    });
}
