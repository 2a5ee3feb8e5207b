// Kinema extension: attention from the temporal transformers to the text (config temporal_text_attention).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UNet3DConditionModel } from '../../../src/models/unet3d/unet3d.js';
import { parseUNet3DConfig } from '../../../src/models/unet3d/config.js';
import { TransformerTemporalModel } from '../../../src/models/unet3d/transformer.js';
import { compileWithWeights } from '../../../src/nn/compile.js';
import type { Tensor } from '../../../src/engine/tensor.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import type { HostTensor } from '../../../src/engine/runtime.js';
import { Generator } from '../../../src/engine/random.js';
import type { StateDict } from '../../../src/nn/module.js';
import { UNET_DIR, compare, fmt, get, loadUNetIO } from './fixture.js';

test('temporal_text_attention config: parsed, default off, bad values name the key', () => {
  const base = {
    block_out_channels: [32, 64],
    down_block_types: ['CrossAttnDownBlock3D', 'DownBlock3D'],
    up_block_types: ['UpBlock3D', 'CrossAttnUpBlock3D'],
    attention_head_dim: 8,
    norm_num_groups: 8,
  };
  assert.equal(parseUNet3DConfig(base).temporalTextAttention, false);
  assert.equal(parseUNet3DConfig({ ...base, temporal_text_attention: null }).temporalTextAttention, false);
  assert.equal(parseUNet3DConfig({ ...base, temporal_text_attention: true }).temporalTextAttention, true);
  assert.throws(
    () => parseUNet3DConfig({ ...base, temporal_text_attention: 'yes' }),
    /'temporal_text_attention' must be true, false or null, got "yes"/,
  );
  // Parameters: attn_text and norm_text in every temporal transformer, none without the key.
  const names = (c: Record<string, unknown>): string[] =>
    [...UNet3DConditionModel.fromConfig(c).namedParameters()].map(([k]) => k);
  assert.equal(names(base).filter((k) => k.includes('_text.')).length, 0);
  const added = names({ ...base, temporal_text_attention: true }).filter((k) => k.includes('_text.'));
  assert.ok(added.includes('transformer_in.transformer_blocks.0.attn_text.to_k.weight'));
  assert.ok(added.includes('mid_block.temp_attentions.0.transformer_blocks.0.norm_text.weight'));
  assert.ok(added.includes('down_blocks.0.temp_attentions.0.transformer_blocks.0.attn_text.to_out.0.bias'));
  assert.ok(added.every((k) => /temp_attentions|transformer_in/.test(k)));
});

/** A temporal transformer (16 channels, text width 12) with random weights; attn_text's output set to `outScale`. */
function temporalWeights(model: TransformerTemporalModel, outScale: number): StateDict {
  const rng = new Generator(5);
  const sd: StateDict = new Map();
  for (const [name, spec] of model.namedParameters()) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    const scale = name.includes('attn_text.to_out') ? outScale : 0.5;
    sd.set(
      name,
      rng.uniform(n).map((v) => (v * 2 - 1) * scale),
    );
  }
  return sd;
}

async function temporalRun(
  text: boolean,
  outScale: number,
  x: HostTensor,
  context: HostTensor,
  frames: number,
): Promise<Float32Array> {
  const model = new TransformerTemporalModel({
    inChannels: 16,
    heads: 2,
    dimHead: 8,
    groups: 4,
    positions: true,
    textAttentionDim: text ? 12 : null,
  });
  const fn = (t: Tensor, c: Tensor): Record<string, Tensor> => ({ y: model.forward(t, frames, c) });
  const inputs = [
    { name: 'x', shape: x.shape },
    { name: 'c', shape: context.shape },
  ];
  const { exe } = await compileWithWeights(fn, inputs, temporalWeights(model, outScale));
  return (await exe.run({ x, c: context }))['y']!.data as Float32Array;
}

test('temporal text attention reads the text per frame; zero output projection = no-op', async () => {
  const frames = 4;
  const b = 2;
  const x = hostTensor(new Generator(9).normal(b * frames * 16 * 2 * 3), [b * frames, 16, 2, 3]);
  const ctxA = hostTensor(new Generator(10).normal(b * 5 * 12), [b, 5, 12]);
  const ctxB = hostTensor(new Generator(11).normal(b * 5 * 12), [b, 5, 12]);
  const gap = (p: Float32Array, q: Float32Array): number =>
    p.reduce((m, v, i) => Math.max(m, Math.abs(v - q[i]!)), 0);
  // Without the extension the text is ignored; with a zero output projection too (same result as without).
  const plainA = await temporalRun(false, 0, x, ctxA, frames);
  assert.equal(gap(plainA, await temporalRun(false, 0, x, ctxB, frames)), 0);
  const zeroA = await temporalRun(true, 0, x, ctxA, frames);
  assert.ok(gap(zeroA, await temporalRun(true, 0, x, ctxB, frames)) < 1e-6);
  // Once the output projection is non-zero, the output depends on the text, and on each video's own text.
  const liveA = await temporalRun(true, 0.5, x, ctxA, frames);
  const liveB = await temporalRun(true, 0.5, x, ctxB, frames);
  assert.ok(gap(liveA, liveB) > 1e-2, `the text must change the output: ${gap(liveA, liveB)}`);
  const half = liveA.length / b;
  const mixed = hostTensor(
    Float32Array.from([
      ...(ctxA.data as Float32Array).subarray(0, 60),
      ...(ctxB.data as Float32Array).subarray(60),
    ]),
    [b, 5, 12],
  );
  const liveMixed = await temporalRun(true, 0.5, x, mixed, frames);
  assert.ok(gap(liveMixed.subarray(0, half), liveA.subarray(0, half)) < 1e-6, 'video 0 reads only its text');
  assert.ok(gap(liveMixed.subarray(half), liveB.subarray(half)) < 1e-6, 'video 1 reads only its text');
});

test('a UNet with temporal_text_attention: freshly added, it gives the reference output; trained, it does not', async (t) => {
  const io = loadUNetIO();
  const config = JSON.parse(readFileSync(join(UNET_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
  const base = await UNet3DConditionModel.fromPretrained(UNET_DIR);
  const model = UNet3DConditionModel.fromConfig({ ...config, temporal_text_attention: true });
  const fresh = model.initParameters(3);
  const sd: StateDict = new Map(fresh);
  for (const [k, v] of base.stateDict) sd.set(k, v);
  assert.equal(sd.size, fresh.size, 'the base weights are a subset of the extended model');
  model.loadWeights(sd);
  const run = (): Promise<HostTensor> =>
    model.run(get(io, 'sample'), get(io, 'timestep'), get(io, 'encoder_hidden_states'));
  const d0 = compare(await run(), get(io, 'out'));
  t.diagnostic(fmt('zero-initialised text attention vs the diffusers reference', d0));
  assert.ok(
    d0.maxAbs < 1e-4,
    `a fresh (zero-output) text attention must not change the output: ${d0.maxAbs}`,
  );
  const live: StateDict = new Map(sd);
  const rng = new Generator(4);
  for (const [k, v] of sd)
    if (/attn_text\.to_out/.test(k))
      live.set(
        k,
        rng.normal(v.length).map((u) => u * 0.2),
      );
  const trained = UNet3DConditionModel.fromConfig({ ...config, temporal_text_attention: true });
  trained.loadWeights(live);
  const d1 = compare(
    await trained.run(get(io, 'sample'), get(io, 'timestep'), get(io, 'encoder_hidden_states')),
    get(io, 'out'),
  );
  t.diagnostic(fmt('non-zero text attention vs the reference', d1));
  assert.ok(d1.maxAbs > 1e-3, 'a non-zero text attention must change the output');
});
