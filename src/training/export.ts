// Exporting trained weights as a Hugging Face component folder (diffusers `diffusion_pytorch_model.safetensors`
// or transformers `model.safetensors`) with its config.json: tensors by their state_dict keys in the model's
// declared shapes, converted to fp16 (as `save_pretrained` after `.half()` writes them), metadata
// {"format": "pt"}. A component folder is replaced as a whole (exportComponent); stale weight files of the other
// layouts or variants are dropped so the folder loads the weights just written.
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { f32ToF16 } from '../io/half.js';
import { writeFileAtomic, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import type { Module, StateDict } from '../nn/module.js';
import { KinemaError } from '../errors.js';

/** Largest finite float16 value. */
export const FP16_MAX = 65504;

export type WeightsBasename = 'diffusion_pytorch_model' | 'model';

export interface ComponentExport {
  /** Written as config.json (snake_case keys, as the library reads them). */
  readonly config: Record<string, unknown>;
  /** Parameter values by state_dict key. */
  readonly stateDict: StateDict;
  /** The module whose declarations give every key's shape (and which keys must be present). */
  readonly module: Module;
  /** 'diffusion_pytorch_model' for diffusers models, 'model' for transformers models. */
  readonly weightsBasename: WeightsBasename;
  /** Stored dtype (default 'F16'). */
  readonly dtype?: 'F16' | 'F32';
}

export interface ExportedComponent {
  readonly dir: string;
  readonly weightsPath: string;
  readonly weightsBytes: number;
  readonly tensorCount: number;
}

/** Writes `value` as pretty-printed JSON (with a final newline), atomically. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/** Tensors to write: every declared parameter in its shape, as F16 (checked for overflow) or F32. */
export function exportTensors(
  module: Module,
  stateDict: StateDict,
  dtype: 'F16' | 'F32' = 'F16',
): Map<string, TensorToWrite> {
  module.validateStateDict(stateDict);
  const out = new Map<string, TensorToWrite>();
  for (const [name, spec] of module.namedParameters()) {
    const values = stateDict.get(name)!;
    if (dtype === 'F32') {
      out.set(name, { dtype, shape: [...spec.shape], data: values });
      continue;
    }
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isFinite(v) || Math.abs(v) > FP16_MAX) {
        throw new KinemaError(
          'TRAIN_EXPORT_FAILED',
          `export: parameter '${name}' holds ${v} at flat index ${i}, which float16 cannot represent`,
        );
      }
    }
    out.set(name, { dtype, shape: [...spec.shape], data: f32ToF16(values) });
  }
  return out;
}

const STALE_WEIGHTS = ['diffusion_pytorch_model', 'model'].flatMap((base) =>
  ['', '.fp16', '.bf16'].flatMap((v) => [`${base}${v}.safetensors`, `${base}.safetensors.index${v}.json`]),
);

/**
 * Writes `dir/config.json` and `dir/<basename>.safetensors` (fp16 by default) as one unit: both go into a
 * hidden sibling folder with the other files `dir` already holds (a tokenizer's, say; stale weights of other
 * layouts are left out), which then replaces `dir` by renames. A process killed at any point leaves either
 * the old folder or the new one under `dir` (or, between the two renames, none, with the old one kept under
 * a `.old` name), never new weights beside an old config.
 */
export function exportComponent(dir: string, c: ComponentExport): ExportedComponent {
  const tensors = exportTensors(c.module, c.stateDict, c.dtype ?? 'F16');
  const file = `${c.weightsBasename}.safetensors`;
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  const temp = join(parent, `.${basename(dir)}.${randomBytes(6).toString('hex')}.partial`);
  mkdirSync(temp);
  try {
    if (existsSync(dir)) {
      for (const name of readdirSync(dir)) {
        if (name === file || name === 'config.json' || STALE_WEIGHTS.includes(name)) continue;
        cpSync(join(dir, name), join(temp, name), { recursive: true });
      }
    }
    writeSafetensors(join(temp, file), tensors, { format: 'pt' });
    writeJsonAtomic(join(temp, 'config.json'), c.config);
    swapFolder(temp, dir);
  } catch (err) {
    rmSync(temp, { recursive: true, force: true });
    throw err;
  }
  let bytes = 0;
  for (const t of tensors.values()) bytes += t.data.byteLength;
  return { dir, weightsPath: join(dir, file), weightsBytes: bytes, tensorCount: tensors.size };
}

/** Puts folder `temp` at `dest`, replacing an existing `dest` through a backup name (restored on failure). */
export function swapFolder(temp: string, dest: string): void {
  if (!existsSync(dest)) {
    renameSync(temp, dest);
    return;
  }
  const backup = `${temp}.old`;
  renameSync(dest, backup);
  try {
    renameSync(temp, dest);
  } catch (err) {
    renameSync(backup, dest);
    throw err;
  }
  rmSync(backup, { recursive: true, force: true });
}
