// How a failed command reaches the user: one line `kinema: <message> [<CODE>]` and exit status 1. Commander's
// own parse errors (unknown option, missing argument, a value its parser rejected) become CLI_BAD_ARGUMENT
// KinemaErrors so they follow the same format and catalogue; help and version output exit 0.
import { CommanderError } from 'commander';
import type { Command } from 'commander';
import { KinemaError, isKinemaError } from '../errors.js';

const INTERNAL_ERROR = 'INTERNAL_ERROR';

/** Commander's errors as KinemaErrors; help/version (exit code 0) are returned as null. */
export function fromCommanderError(err: unknown): unknown {
  if (!(err instanceof CommanderError)) return err;
  if (err.exitCode === 0) return null;
  if (err.code === 'commander.help')
    return new KinemaError('CLI_BAD_ARGUMENT', 'no command given (see the help above)');
  const message = err.message.replace(/^error:\s*/, '');
  return new KinemaError('CLI_BAD_ARGUMENT', `${message} (see --help)`, { cause: err });
}

/** Makes `cmd` and all its subcommands throw instead of exiting, printing only help/version text. */
export function throwInsteadOfExit(cmd: Command, quiet = false): Command {
  cmd.exitOverride();
  // Commander's "error: …" line is replaced by ours; help text (also on stderr when no command is given) stays.
  cmd.configureOutput({
    outputError: () => {},
    ...(quiet && { writeOut: () => {}, writeErr: () => {} }),
  });
  for (const sub of cmd.commands) throwInsteadOfExit(sub, quiet);
  return cmd;
}

/**
 * The one line the CLI prints for a failed command: the message and, for a KinemaError, its code
 * (looked up in docs/errors.md). Anything else escaped a check and is a bug: say so, with the stack
 * available under KINEMA_DEBUG=1.
 */
export function cliErrorLine(err: unknown): string {
  if (isKinemaError(err)) return `kinema: ${err.message} [${err.code}]`;
  const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return `kinema: internal error (a bug; please report it, with KINEMA_DEBUG=1 for the stack): ${msg} [${INTERNAL_ERROR}]`;
}
