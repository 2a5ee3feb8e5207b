// `kinema generate <args>` parsed exactly as the CLI parses it (commander with our option parsers), then put
// through every check that runs before a weight is loaded (planGenerate). The action never generates.
import { fromCommanderError, throwInsteadOfExit } from '../../src/cli/cli_errors.js';
import { DEFAULT_MODEL_DIR, generateCommand } from '../../src/cli/generate.js';
import { planGenerate } from '../../src/cli/generate_checks.js';
import type { GenerateCheckFlags } from '../../src/cli/generate_checks.js';

export function parseGenerateArgs(args: string[]): void {
  const cmd = throwInsteadOfExit(generateCommand(), true);
  cmd.action((prompt: string, flags: GenerateCheckFlags) => {
    planGenerate(prompt, flags, DEFAULT_MODEL_DIR);
  });
  try {
    cmd.parse(['a red circle moves left', ...args], { from: 'user' });
  } catch (e) {
    const err = fromCommanderError(e);
    if (err !== null) throw err;
  }
}
