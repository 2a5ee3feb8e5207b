#!/usr/bin/env node
// Kinema command line: each subcommand lives in its own file and is registered here.
import { Command } from 'commander';
import { cliErrorLine, fromCommanderError, throwInsteadOfExit } from './cli_errors.js';
import { evalCommand, registerClipLoader } from './eval.js';
import { loadClipEmbedder } from '../models/clip/embedder.js';
import { generateCommand } from './generate.js';
import { trainCommand } from './train.js';
import { convertCommand } from './convert.js';
import { serveCommand } from './serve.js';
import { workerCommand } from './worker.js';
import { loraCommand } from './lora.js';

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
  program.addCommand(loraCommand());
  return program;
}

const isMain = process.argv[1] !== undefined && /cli[\\/]main\.(ts|js)$/.test(process.argv[1]);
if (isMain) {
  throwInsteadOfExit(buildProgram())
    .parseAsync(process.argv)
    .catch((caught: unknown) => {
      const err = fromCommanderError(caught);
      if (err === null) process.exit(0); // --help, --version
      console.error(cliErrorLine(err));
      if (process.env['KINEMA_DEBUG'] && err instanceof Error) console.error(err.stack);
      process.exit(1);
    });
}
