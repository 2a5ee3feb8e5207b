// `kinema convert IN.ckpt -o OUT.safetensors`: every tensor of a PyTorch checkpoint's state dict, under its full
// key name and in its own dtype, into a safetensors file (atomically; one tensor in memory at a time). The
// checkpoint is read by the restricted unpickler: an unknown global is refused by name unless --inert-unknown.
import { basename, resolve } from 'node:path';
import { Command } from 'commander';
import { KinemaError } from '../errors.js';
import { TorchCheckpoint } from '../io/torch_ckpt.js';
import { writeSafetensorsLazy } from '../io/safetensors.js';

export interface ConvertResult {
  tensors: number;
  bytes: number;
  skipped: string[];
  metadata: Record<string, string>;
}

/** Converts `input` to `output`; nothing is written unless the whole checkpoint parses. */
export function convertCheckpoint(
  input: string,
  output: string,
  opts: { inertUnknown?: boolean } = {},
): ConvertResult {
  if (resolve(input) === resolve(output)) {
    throw new KinemaError('CONVERT_SAME_FILE', `convert: output ${output} is the input file`);
  }
  const ckpt = TorchCheckpoint.open(input, { inertUnknown: opts.inertUnknown ?? false });
  try {
    const keys = ckpt.keys();
    if (keys.length === 0) {
      throw new KinemaError('CKPT_NO_STATE_DICT', `${input}: the state dict holds no tensors`);
    }
    // safetensors metadata is string → string; keep where the file came from and Lightning's scalars.
    const metadata: Record<string, string> = { format: 'pt', source: basename(input), ...ckpt.metadata };
    let bytes = 0;
    const tensors = keys.map((name) => {
      const t = ckpt.tensor(name);
      bytes += t.byteLength;
      return {
        name,
        dtype: t.dtype,
        shape: t.shape,
        byteLength: t.byteLength,
        read: () => ckpt.readBytes(name),
      };
    });
    writeSafetensorsLazy(output, tensors, metadata);
    return { tensors: keys.length, bytes, skipped: ckpt.skipped, metadata };
  } finally {
    ckpt.close();
  }
}

export function convertCommand(): Command {
  return new Command('convert')
    .description('convert a PyTorch checkpoint (.ckpt/.pt/.pth/.bin, zip or legacy) to .safetensors, safely')
    .argument('<input>', 'PyTorch checkpoint')
    .requiredOption('-o, --output <file>', 'output .safetensors file')
    .option(
      '--inert-unknown',
      'keep unknown objects outside the tensors as inert placeholders (never imported, never called) instead of refusing the file',
      false,
    )
    .action((input: string, flags: { output: string; inertUnknown: boolean }) => {
      const r = convertCheckpoint(input, flags.output, { inertUnknown: flags.inertUnknown });
      console.log(`wrote ${flags.output}: ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(2)} MB`);
      if (r.skipped.length > 0) {
        console.log(
          `skipped ${r.skipped.length} non-tensor entries of the state dict: ${r.skipped.slice(0, 10).join(', ')}`,
        );
      }
    });
}
