// A tiny random CLIPModel in the Hugging Face folder layout, generated deterministically (Kinema's seeded
// Generator) for tests. `test/fixtures/clip/tiny_clip_golden.safetensors` holds reference outputs that
// `test/fixtures/clip/make_golden.py` computed for exactly these weights with an independent torch
// implementation; its metadata records the SHA-256 of the weights file it saw.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Generator } from '../../../src/engine/random.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../../src/io/safetensors.js';
import { parseClipConfig } from '../../../src/models/clip/config.js';
import { ClipModelRoot } from '../../../src/models/clip/clip_model.js';
import type { StateDict } from '../../../src/nn/module.js';

export const GOLDEN_PATH = resolve(process.cwd(), 'test/fixtures/clip/tiny_clip_golden.safetensors');

export const TINY_CLIP_CONFIG = {
  architectures: ['CLIPModel'],
  model_type: 'clip',
  projection_dim: 12,
  logit_scale_init_value: 2.6592,
  text_config: {
    model_type: 'clip_text_model',
    vocab_size: 49408,
    hidden_size: 16,
    intermediate_size: 36,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    max_position_embeddings: 77,
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
    bos_token_id: 0,
    eos_token_id: 2,
    pad_token_id: 1,
  },
  vision_config: {
    model_type: 'clip_vision_model',
    hidden_size: 24,
    intermediate_size: 40,
    num_hidden_layers: 2,
    num_attention_heads: 2,
    num_channels: 3,
    image_size: 32,
    patch_size: 8,
    hidden_act: 'gelu',
    layer_norm_eps: 1e-5,
  },
};

/** Declared inits (seed 11) plus N(0, 0.05²) noise on every tensor, so no LayerNorm is the identity. */
export function tinyClipStateDict(): { stateDict: StateDict; shapes: Map<string, number[]> } {
  const root = new ClipModelRoot(parseClipConfig(TINY_CLIP_CONFIG));
  const stateDict = root.initParameters(11);
  const noise = new Generator(12);
  const shapes = new Map<string, number[]>();
  for (const [name, spec] of [...root.namedParameters()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const v = stateDict.get(name)!;
    const n = noise.normal(v.length);
    for (let i = 0; i < v.length; i++) v[i]! += 0.05 * n[i]!;
    shapes.set(name, [...spec.shape]);
  }
  stateDict.get('logit_scale')![0] = 2.6592;
  return { stateDict, shapes };
}

function tensors(
  sd: StateDict,
  shapes: Map<string, number[]>,
  keep: (k: string) => boolean,
): Map<string, TensorToWrite> {
  const out = new Map<string, TensorToWrite>();
  for (const [k, v] of sd) if (keep(k)) out.set(k, { dtype: 'F32', shape: shapes.get(k)!, data: v });
  return out;
}

/** position_ids buffers, as older transformers versions saved them next to the parameters. */
function positionIds(prefix: string, n: number): [string, TensorToWrite] {
  const ids = BigInt64Array.from({ length: n }, (_, i) => BigInt(i));
  return [`${prefix}.embeddings.position_ids`, { dtype: 'I64', shape: [1, n], data: ids }];
}

/** Writes config.json + model.safetensors of the tiny CLIPModel into `dir`; returns the weights' SHA-256. */
export function writeTinyClipFolder(dir: string): string {
  const { stateDict, shapes } = tinyClipStateDict();
  const t = tensors(stateDict, shapes, () => true);
  t.set(...positionIds('text_model', 77));
  t.set(...positionIds('vision_model', 17));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(TINY_CLIP_CONFIG, null, 2));
  writeSafetensors(join(dir, 'model.safetensors'), t, { format: 'pt' });
  return createHash('sha256')
    .update(readFileSync(join(dir, 'model.safetensors')))
    .digest('hex');
}

/** The vision tower alone (CLIPVisionModelWithProjection layout) from the same weights. */
export function writeTinyVisionFolder(dir: string): void {
  const { stateDict, shapes } = tinyClipStateDict();
  const keep = (k: string): boolean => k.startsWith('vision_model.') || k === 'visual_projection.weight';
  const config = {
    ...TINY_CLIP_CONFIG.vision_config,
    projection_dim: 12,
    architectures: ['CLIPVisionModelWithProjection'],
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeSafetensors(join(dir, 'model.safetensors'), tensors(stateDict, shapes, keep));
}

/** Deterministic test inputs: 3 images [3, 32, 32] and 2 padded token rows [77] with attention masks. */
export function tinyClipInputs(): { pixels: Float32Array; ids: BigInt64Array; mask: BigInt64Array } {
  const pixels = new Generator(13).normal(3 * 3 * 32 * 32);
  const rows = [
    [49406, 320, 736, 7117, 3584, 1823, 49407], // 'a red circle moving left'
    [49406, 550, 1125, 12, 17, 9, 3306, 539, 320, 2368, 49407],
  ];
  const ids = new BigInt64Array(2 * 77).fill(49407n); // padded with <|endoftext|>, like openai/clip-vit-*
  const mask = new BigInt64Array(2 * 77);
  rows.forEach((row, r) =>
    row.forEach((id, j) => {
      ids[r * 77 + j] = BigInt(id);
      mask[r * 77 + j] = 1n;
    }),
  );
  return { pixels, ids, mask };
}

/** Writes the inputs for make_golden.py. */
export function writeTinyClipInputs(path: string): void {
  const { pixels, ids, mask } = tinyClipInputs();
  writeSafetensors(path, {
    pixel_values: { dtype: 'F32', shape: [3, 3, 32, 32], data: pixels },
    input_ids: { dtype: 'I64', shape: [2, 77], data: ids },
    attention_mask: { dtype: 'I64', shape: [2, 77], data: mask },
  });
}

export interface RefTensor {
  data: Float32Array;
  shape: number[];
}

/** The golden file's tensors (float32; ids as BigInt64Array) and the weights hash it was computed for. */
export function readGolden(): {
  get: (name: string) => RefTensor;
  ids: BigInt64Array;
  mask: BigInt64Array;
  weightsSha256: string;
} {
  const f = SafetensorsFile.open(GOLDEN_PATH);
  try {
    const tensors = new Map(
      f.names().map((n) => [n, { data: f.readFloat32(n), shape: f.info(n).shape }] as const),
    );
    return {
      ids: BigInt64Array.from(f.read('input_ids') as BigInt64Array),
      mask: BigInt64Array.from(f.read('attention_mask') as BigInt64Array),
      weightsSha256: f.metadata['weights_sha256'] ?? '',
      get: (name) => {
        const t = tensors.get(name);
        if (!t) throw new Error(`${GOLDEN_PATH} has no tensor '${name}'`);
        return t;
      },
    };
  } finally {
    f.close();
  }
}

/** max |got − ref| ≤ rel · max |ref| (printed); returns the measured error. */
export function assertClose(
  label: string,
  got: { shape: readonly number[]; data: ArrayLike<number> | BigInt64Array },
  ref: RefTensor,
  rel = 1e-4,
): number {
  assert.deepEqual([...got.shape], ref.shape, `${label}: shape`);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < ref.data.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(Number(got.data[i]) - ref.data[i]!));
    maxRef = Math.max(maxRef, Math.abs(ref.data[i]!));
  }
  console.log(`${label}: max abs diff ${maxDiff.toExponential(3)} (max |ref| ${maxRef.toPrecision(4)})`);
  assert.ok(
    Number.isFinite(maxDiff) && maxDiff <= rel * maxRef,
    `${label}: max abs diff ${maxDiff} > ${rel} × ${maxRef}`,
  );
  return maxDiff;
}
