// Kinema extension: sinusoidal frame positions in the temporal transformers (config temporal_positions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UNet3DConditionModel } from '../../../src/models/unet3d/unet3d.js';
import { parseUNet3DConfig } from '../../../src/models/unet3d/config.js';
import { TransformerTemporalModel, sinusoidalPositionTable } from '../../../src/models/unet3d/transformer.js';
import { compileWithWeights } from '../../../src/nn/compile.js';
import type { Tensor } from '../../../src/engine/tensor.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import type { HostTensor } from '../../../src/engine/runtime.js';
import { Generator } from '../../../src/engine/random.js';
import type { StateDict } from '../../../src/nn/module.js';
import { UNET_DIR, compare, fmt, get, loadUNetIO } from './fixture.js';

test('sinusoidal position table: sin/cos pairs at frequencies 10000^(-2k/d)', () => {
  const d = 6;
  const table = sinusoidalPositionTable(5, d);
  assert.equal(table.length, 5 * d);
  for (let p = 0; p < 5; p++) {
    for (let k = 0; k < d / 2; k++) {
      const w = Math.pow(10000, (-2 * k) / d);
      assert.ok(Math.abs(table[p * d + 2 * k]! - Math.sin(p * w)) < 1e-6, `sin p=${p} k=${k}`);
      assert.ok(Math.abs(table[p * d + 2 * k + 1]! - Math.cos(p * w)) < 1e-6, `cos p=${p} k=${k}`);
    }
  }
  // Row 0 is (0, 1, 0, 1, …); row 1 starts (sin 1, cos 1).
  assert.deepEqual(Array.from(table.subarray(0, d)), [0, 1, 0, 1, 0, 1]);
  assert.ok(Math.abs(table[d]! - Math.sin(1)) < 1e-7);
  assert.throws(() => sinusoidalPositionTable(4, 5), /even width, got 5/);
});

test('temporal_positions config: parsed, default off, bad values name the key', () => {
  const base = { block_out_channels: [32, 64], down_block_types: ['CrossAttnDownBlock3D', 'DownBlock3D'] };
  const up = {
    up_block_types: ['UpBlock3D', 'CrossAttnUpBlock3D'],
    attention_head_dim: 8,
    norm_num_groups: 8,
  };
  assert.equal(parseUNet3DConfig({ ...base, ...up }).temporalPositions, false);
  assert.equal(parseUNet3DConfig({ ...base, ...up, temporal_positions: null }).temporalPositions, false);
  assert.equal(
    parseUNet3DConfig({ ...base, ...up, temporal_positions: 'sinusoidal' }).temporalPositions,
    true,
  );
  assert.throws(
    () => parseUNet3DConfig({ ...base, ...up, temporal_positions: 'learned' }),
    /'temporal_positions' must be "sinusoidal" or null, got "learned"/,
  );
});

/** Runs a temporal transformer with random weights on x [F, C, H, W] (one video of F frames). */
async function temporalRun(positions: boolean, x: HostTensor, frames: number): Promise<Float32Array> {
  const model = new TransformerTemporalModel({ inChannels: 16, heads: 2, dimHead: 8, groups: 4, positions });
  const rng = new Generator(5);
  const sd: StateDict = new Map();
  for (const [name, spec] of model.namedParameters()) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    sd.set(
      name,
      rng.uniform(n).map((v) => (v * 2 - 1) * 0.5),
    );
  }
  const fn = (t: Tensor): Record<string, Tensor> => ({ y: model.forward(t, frames) });
  const { exe } = await compileWithWeights(fn, [{ name: 'x', shape: x.shape }], sd);
  return (await exe.run({ x }))['y']!.data as Float32Array;
}

/** Frames of [F, C, H, W] data in the order `perm` (new frame i = old frame perm[i]). */
function permuteFrames(data: Float32Array, frames: number, perm: number[]): Float32Array {
  const per = data.length / frames;
  const out = new Float32Array(data.length);
  perm.forEach((src, i) => out.set(data.subarray(src * per, (src + 1) * per), i * per));
  return out;
}

test('temporal positions make temporal attention see frame order (without them it is order-blind)', async () => {
  const frames = 6;
  const shape = [frames, 16, 2, 3];
  const data = new Generator(9).normal(shape.reduce((a, b) => a * b, 1));
  const perm = [3, 0, 5, 1, 4, 2];
  const x = hostTensor(data, shape);
  const xp = hostTensor(permuteFrames(data, frames, perm), shape);
  const gap = (a: Float32Array, b: Float32Array): number =>
    a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  for (const positions of [false, true]) {
    const y = await temporalRun(positions, x, frames);
    const yp = await temporalRun(positions, xp, frames);
    const diff = gap(permuteFrames(y, frames, perm), yp);
    if (positions) assert.ok(diff > 1e-2, `with positions, permuting frames must change more: ${diff}`);
    else assert.ok(diff < 1e-5, `without positions, the layer must be permutation-equivariant: ${diff}`);
  }
});

test('a UNet with temporal_positions loads the same state dict and changes the output', async (t) => {
  const io = loadUNetIO();
  const config = JSON.parse(readFileSync(join(UNET_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
  const base = await UNet3DConditionModel.fromPretrained(UNET_DIR);
  const model = UNet3DConditionModel.fromConfig({ ...config, temporal_positions: 'sinusoidal' });
  model.loadWeights(base.stateDict); // strict: the extension adds no parameters
  const out = await model.run(get(io, 'sample'), get(io, 'timestep'), get(io, 'encoder_hidden_states'));
  const d = compare(out, get(io, 'out'));
  t.diagnostic(fmt('with positions vs the diffusers reference', d));
  assert.ok(d.maxAbs > 1e-3, 'positions must change the output of a trained temporal attention');
  assert.ok(Number.isFinite(d.maxAbs));
});
