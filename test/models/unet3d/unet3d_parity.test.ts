// UNet3DConditionModel against diffusers v0.35.2 reference outputs (tiny random model in the parity fixtures).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, copyFileSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UNet3DConditionModel } from '../../../src/models/unet3d/unet3d.js';
import { compileWithWeights } from '../../../src/nn/compile.js';
import type { Tensor } from '../../../src/engine/tensor.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import { SafetensorsFile, writeSafetensors } from '../../../src/io/safetensors.js';
import type { TensorToWrite } from '../../../src/io/safetensors.js';
import { f16ToF32, f32ToF16 } from '../../../src/io/half.js';
import { UNET_DIR, compare, fmt, get, loadUNetIO } from './fixture.js';

const io = loadUNetIO();
const modelPromise = UNet3DConditionModel.fromPretrained(UNET_DIR);
const TOL = 1e-4;

function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-unet3d-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('fixture model: architecture from config.json, 466 tensors / 1,328,900 parameters', async () => {
  const model = await modelPromise;
  assert.equal(model.namedParameters().size, 466);
  assert.equal(model.parameterCount(), 1_328_900);
  assert.deepEqual(model.config.blockOutChannels, [32, 64]);
});

test('forward matches diffusers: out and every inter.* intermediate', async (t) => {
  const model = await modelPromise;
  const sample = get(io, 'sample');
  const timestep = get(io, 'timestep');
  const ehs = get(io, 'encoder_hidden_states');
  const fn = (x: Tensor, ts: Tensor, e: Tensor): Record<string, Tensor> => {
    const inter: Record<string, Tensor> = {};
    const out = model.forward(x, ts, e, { intermediates: inter });
    return { out, ...Object.fromEntries(Object.entries(inter).map(([k, v]) => [`inter.${k}`, v])) };
  };
  const specs = [
    { name: 'sample', shape: sample.shape },
    { name: 'timestep', shape: timestep.shape, dtype: 'int64' as const },
    { name: 'encoder_hidden_states', shape: ehs.shape },
  ];
  const { exe } = await compileWithWeights(fn, specs, model.stateDict);
  const res = await exe.run({ sample, timestep, encoder_hidden_states: ehs });
  const expected = [...io.keys()].filter((k) => k === 'out' || k.startsWith('inter.'));
  assert.equal(expected.length, 12);
  for (const name of expected) {
    const actual = res[name];
    assert.ok(actual, `forward produced no '${name}'`);
    const d = compare(actual, get(io, name));
    t.diagnostic(fmt(name, d));
    assert.ok(d.rel <= TOL, fmt(name, d));
  }
});

test('run(): scalar timestep broadcasts to the batch (out_timestep_scalar), number and int64 agree', async (t) => {
  const model = await modelPromise;
  const sample = get(io, 'sample');
  const ehs = get(io, 'encoder_hidden_states');
  const fromInt = await model.run(sample, get(io, 'timestep_scalar'), ehs);
  const d = compare(fromInt, get(io, 'out_timestep_scalar'));
  t.diagnostic(fmt('out_timestep_scalar', d));
  assert.ok(d.rel <= TOL, fmt('out_timestep_scalar', d));
  const fromNumber = await model.run(sample, 981, ehs);
  assert.equal(compare(fromNumber, fromInt).maxAbs, 0);
  const perSample = await model.run(sample, get(io, 'timestep'), ehs);
  const dOut = compare(perSample, get(io, 'out'));
  t.diagnostic(fmt('run() out', dOut));
  assert.ok(dOut.rel <= TOL);
  assert.ok(compare(perSample, fromInt).maxAbs > 0.01, 'different timesteps must give different outputs');
});

test('fp16 weights (variant file) load, upcast exactly, and match within fp16 tolerance', async (t) => {
  const model = await modelPromise;
  await withTempDir(async (dir) => {
    const src = SafetensorsFile.open(join(UNET_DIR, 'diffusion_pytorch_model.safetensors'));
    const tensors = new Map<string, TensorToWrite>();
    try {
      for (const name of src.names()) {
        tensors.set(name, {
          dtype: 'F16',
          shape: src.info(name).shape,
          data: f32ToF16(src.readFloat32(name)),
        });
      }
    } finally {
      src.close();
    }
    writeSafetensors(join(dir, 'diffusion_pytorch_model.fp16.safetensors'), tensors);
    copyFileSync(join(UNET_DIR, 'config.json'), join(dir, 'config.json'));
    const half = await UNet3DConditionModel.fromPretrained(dir, { variant: 'fp16' });
    const key = 'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight';
    const rounded = f16ToF32(f32ToF16(model.stateDict.get(key)!));
    assert.deepEqual(half.stateDict.get(key), rounded);
    const out = await half.run(get(io, 'sample'), get(io, 'timestep'), get(io, 'encoder_hidden_states'));
    const d = compare(out, get(io, 'out'));
    t.diagnostic(fmt('fp16 weights out', d));
    assert.ok(d.rel <= 5e-3, fmt('fp16 weights out', d));
    assert.ok(d.maxAbs > 0, 'fp16 rounding must change the output a little');
  });
});

test('loading errors name the problem: missing key, config/weights shape mismatch, unknown block type', async () => {
  const model = await modelPromise;
  await withTempDir(async (dir) => {
    const config = JSON.parse(readFileSync(join(UNET_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
    const tensors = new Map<string, TensorToWrite>();
    for (const [name, v] of model.stateDict) {
      if (name !== 'mid_block.resnets.1.conv2.bias')
        tensors.set(name, { dtype: 'F32', shape: model.namedParameters().get(name)!.shape, data: v });
    }
    writeSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'), tensors);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    await assert.rejects(
      UNet3DConditionModel.fromPretrained(dir),
      /missing keys: mid_block\.resnets\.1\.conv2\.bias/,
    );
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, cross_attention_dim: 16 }));
    await assert.rejects(
      UNet3DConditionModel.fromPretrained(dir),
      /shape mismatch for 'down_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn2\.to_k\.weight': checkpoint has \[32,32\], model expects \[32,16\]/,
    );
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ ...config, down_block_types: ['CrossAttnDownBlock3D', 'SpatioTemporalDown'] }),
    );
    await assert.rejects(
      UNet3DConditionModel.fromPretrained(dir),
      /config\.json: .*unknown down_block type "SpatioTemporalDown"/,
    );
  });
});

test('bad inputs: wrong context batch/width, wrong timestep length, fps without fps_cond', async () => {
  const model = await modelPromise;
  const sample = get(io, 'sample');
  const ehs = get(io, 'encoder_hidden_states');
  const oneCtx = hostTensor((ehs.data as Float32Array).slice(0, 7 * 32), [1, 7, 32]);
  await assert.rejects(model.run(sample, 10, oneCtx), /encoder hidden states must be float32 \[2, S, 32\]/);
  await assert.rejects(
    model.run(sample, hostTensor(new Float32Array(3), [3]), ehs),
    /timestep must have shape \[\], \[1\] or \[2\]/,
  );
  await assert.rejects(model.run(sample, 10, ehs, { fps: 8 }), /no fps conditioning/);
  assert.throws(() => UNet3DConditionModel.fromConfig({ block_out_channels: [32, 64] }), /same length/);
});

test('spatial size not divisible by the upsampling factor: upsamplers target the skip sizes', async () => {
  const model = await modelPromise;
  const sample = hostTensor(
    new Float32Array(1 * 4 * 2 * 7 * 5).map((_, i) => Math.sin(i)),
    [1, 4, 2, 7, 5],
  );
  const ehs = hostTensor(
    new Float32Array(1 * 3 * 32).map((_, i) => Math.cos(i)),
    [1, 3, 32],
  );
  const out = await model.run(sample, 500, ehs);
  assert.deepEqual(out.shape, [1, 4, 2, 7, 5]);
  assert.ok((out.data as Float32Array).every(Number.isFinite));
});
