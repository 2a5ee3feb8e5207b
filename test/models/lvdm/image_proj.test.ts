// VideoCrafter1's image projection model (ip_resampler.Resampler) vs the release's own module
// (scripts/fixtures/lvdm_i2v.py): a tiny random Resampler loaded by its `image_proj_model.*` keys, output matched
// in fp32; the release-size Resampler's keys and shapes (from the reference, no weights) are Kinema's; the
// config block is read with named errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { TorchCheckpoint, toPlain } from '../../../src/io/torch_ckpt.js';
import { CheckpointKeyMap } from '../../../src/io/checkpoint_keys.js';
import type { TensorReader } from '../../../src/io/checkpoint_keys.js';
import { PickleDict } from '../../../src/io/torch_pickle.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import {
  LvdmResampler,
  VIDEOCRAFTER1_RESAMPLER,
  loadLvdmResampler,
  parseLvdmResamplerConfig,
} from '../../../src/models/lvdm/image_proj.js';
import { maxRelErr } from './compare.js';

const FIXTURE = resolve('test/fixtures/lvdm/resampler.pt');

function io(): Record<string, { data: Float32Array; shape: number[] }> {
  const c = TorchCheckpoint.open(FIXTURE, { stateDictKey: 'io' });
  try {
    return Object.fromEntries(c.keys().map((k) => [k, { data: c.readFloat32(k), shape: c.info(k).shape }]));
  } finally {
    c.close();
  }
}

test('Resampler (image_proj_model.*) matches VideoCrafter ≤ 1e-4: tokens [2, 17, 32] → [2, 16, 24]', async (t) => {
  const ckpt = TorchCheckpoint.open(FIXTURE);
  const raw = toPlain((ckpt.root as PickleDict).map.get('config')) as Record<string, unknown>;
  const config = parseLvdmResamplerConfig(raw);
  assert.deepEqual(config, {
    dim: 32,
    depth: 2,
    dimHead: 8,
    heads: 3,
    numQueries: 16,
    embeddingDim: 32,
    outputDim: 24,
    ffMult: 4,
  });
  const keys = new CheckpointKeyMap(ckpt);
  const model = loadLvdmResampler(keys, config);
  keys.assertAllUsed('a Resampler');
  ckpt.close();
  const d = io();
  assert.deepEqual(d['x']!.shape, [2, 17, 32]);
  const out = await model.run(hostTensor(d['x']!.data, d['x']!.shape));
  assert.deepEqual(out.shape, [2, 16, 24]);
  const err = maxRelErr(out.data as Float32Array, d['out']!.data);
  t.diagnostic(`max |Δ| ${err.abs.toExponential(2)}, relative to max |out| ${err.rel.toExponential(2)}`);
  assert.ok(err.abs <= 1e-4, `max |Δ| ${err.abs}`);
});

test("the release's Resampler: every image_proj_model.* key and shape of VideoCrafter's, 48.5M parameters", () => {
  const ref = JSON.parse(readFileSync(resolve('test/fixtures/lvdm/resampler_release_keys.json'), 'utf8')) as {
    config: Record<string, unknown>;
    parameters: number;
    keys: Record<string, number[]>;
  };
  assert.deepEqual(parseLvdmResamplerConfig(ref.config), VIDEOCRAFTER1_RESAMPLER);
  const model = new LvdmResampler(VIDEOCRAFTER1_RESAMPLER);
  const ours = Object.fromEntries(
    [...model.namedParameters()].map(([k, spec]) => [`image_proj_model.${k}`, [...spec.shape]]),
  );
  assert.deepEqual(ours, ref.keys);
  assert.equal(model.parameterCount(), ref.parameters);
});

test('Resampler config and loading errors are named', () => {
  const bad = (raw: Record<string, unknown>, pattern: RegExp): void =>
    assert.throws(
      () => parseLvdmResamplerConfig(raw),
      (e: Error & { code?: string }) => e.code === 'LVDM_CONFIG' && pattern.test(e.message),
    );
  bad({ video_length: 16 }, /video_length: not a parameter of VideoCrafter's ip_resampler\.Resampler/);
  bad({ heads: 0 }, /heads: want a positive integer/);
  bad({ depth: 2.5 }, /depth: want a positive integer/);
  // omitted values are the Resampler class's own defaults (what instantiate_from_config gives)
  assert.deepEqual(parseLvdmResamplerConfig({ dim: 64 }), {
    dim: 64,
    depth: 8,
    dimHead: 64,
    heads: 16,
    numQueries: 8,
    embeddingDim: 768,
    outputDim: 1024,
    ffMult: 4,
  });

  const ckpt = TorchCheckpoint.open(FIXTURE);
  try {
    const config = parseLvdmResamplerConfig(
      toPlain((ckpt.root as PickleDict).map.get('config')) as Record<string, unknown>,
    );
    const reader = (keys: string[]): TensorReader => ({
      path: 'r.ckpt',
      keys: () => keys,
      info: (k) => (ckpt.keys().includes(k) ? ckpt.info(k) : { shape: [4] }),
      readFloat32: (k) => (ckpt.keys().includes(k) ? ckpt.readFloat32(k) : new Float32Array(4)),
    });
    const mismatch = (keys: string[], pattern: RegExp): void =>
      assert.throws(
        () => loadLvdmResampler(new CheckpointKeyMap(reader(keys)), config),
        (e: Error & { code?: string }) => e.code === 'CKPT_KEY_MISMATCH' && pattern.test(e.message),
      );
    const all = ckpt.keys();
    mismatch(
      all.filter((k) => k !== 'image_proj_model.layers.1.0.to_kv.weight'),
      /missing keys: layers\.1\.0\.to_kv\.weight/,
    );
    mismatch(
      [...all, 'image_proj_model.layers.2.0.norm1.weight'],
      /unexpected keys: layers\.2\.0\.norm1\.weight/,
    );
    mismatch(
      ['image_proj_model.proj.weight', 'image_proj_model.proj.bias', 'image_proj_model.norm.weight'],
      /ImageProjModel \(finegrained: false/,
    );
    // a resampler of other sizes: named by the key whose shape differs
    assert.throws(
      () => loadLvdmResampler(new CheckpointKeyMap(ckpt), { ...config, outputDim: 16 }),
      (e: Error & { code?: string }) =>
        e.code === 'CKPT_KEY_MISMATCH' && /shape mismatch for 'proj_out\.weight'/.test(e.message),
    );
  } finally {
    ckpt.close();
  }
});
