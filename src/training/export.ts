// Exporting trained weights as a Hugging Face component folder (diffusers `diffusion_pytorch_model.safetensors`
// or transformers `model.safetensors`) with its config.json: tensors by their state_dict keys in the model's
// declared shapes, converted to fp16 (as `save_pretrained` after `.half()` writes them), metadata
// {"format": "pt"}. Every file is written atomically; stale weight files of the other layouts or variants are
// removed so the folder loads the weights just written.
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
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

/** Writes `dir/config.json` and `dir/<basename>.safetensors` (fp16 by default). */
export function exportComponent(dir: string, c: ComponentExport): ExportedComponent {
  const tensors = exportTensors(c.module, c.stateDict, c.dtype ?? 'F16');
  mkdirSync(dir, { recursive: true });
  const file = `${c.weightsBasename}.safetensors`;
  const weightsPath = join(dir, file);
  writeSafetensors(weightsPath, tensors, { format: 'pt' });
  for (const stale of STALE_WEIGHTS) {
    if (stale !== file && existsSync(join(dir, stale))) rmSync(join(dir, stale));
  }
  writeJsonAtomic(join(dir, 'config.json'), c.config);
  let bytes = 0;
  for (const t of tensors.values()) bytes += t.data.byteLength;
  return { dir, weightsPath, weightsBytes: bytes, tensorCount: tensors.size };
}
