// Parity of AutoencoderKL with diffusers v0.35.2 on the tiny fixture (see the fixture README, section vae/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { AutoencoderKL } from '../../../src/models/vae/autoencoder_kl.js';
import type { HostTensor } from '../../../src/engine/runtime.js';
import { compile, hostTensor } from '../../../src/engine/runtime.js';
import { valueAndGrad } from '../../../src/engine/autodiff.js';
import * as op from '../../../src/engine/ops.js';
import { writeSafetensors } from '../../../src/io/safetensors.js';
import type { TensorToWrite } from '../../../src/io/safetensors.js';
import { f16ToF32, f32ToF16 } from '../../../src/io/half.js';
import { VAE_DIR, readTensors, relativeError, vaeConfigJson, withTempDir } from './vae_fixture.js';

const TOL = 1e-4; // max abs diff ≤ 1e-4 × max |reference|

const io = readTensors(join(VAE_DIR, 'io.safetensors'));
const ref = (name: string): HostTensor => {
  const t = io.get(name);
  if (!t) throw new Error(`vae/io.safetensors has no tensor '${name}'`);
  return t;
};
const vaePromise = AutoencoderKL.fromPretrained(VAE_DIR);

function expectClose(name: string, actual: HostTensor, expected: HostTensor, tol = TOL): void {
  const err = relativeError(actual, expected);
  console.log(`  ${name}: max abs diff / max |ref| = ${err.toExponential(2)} (tolerance ${tol})`);
  assert.ok(err <= tol, `${name}: relative error ${err} exceeds ${tol}`);
}

test('structure follows config.json and the checkpoint keys', async () => {
  const vae = await vaePromise;
  const cfg = vaeConfigJson();
  const channels = cfg['block_out_channels'] as number[];
  assert.equal(vae.scaleFactor, 2 ** (channels.length - 1));
  assert.equal(vae.config.latentChannels, cfg['latent_channels']);
  assert.equal(vae.config.scalingFactor, cfg['scaling_factor']);
  assert.deepEqual([...vae.namedParameters().keys()].sort(), [...vae.stateDict.keys()].sort());
  const checkpoint = readTensors(join(VAE_DIR, 'diffusion_pytorch_model.safetensors'));
  let total = 0;
  for (const t of checkpoint.values()) total += t.data.length;
  assert.equal(vae.parameterCount(), total);
  const [n, , h, w] = ref('image').shape as number[];
  assert.deepEqual(ref('posterior_mean').shape, [
    n,
    cfg['latent_channels'],
    h! / vae.scaleFactor,
    w! / vae.scaleFactor,
  ]);
});

test('encode matches the posterior mean, logvar and std', async () => {
  const vae = await vaePromise;
  const post = await vae.encode(ref('image'));
  expectClose('posterior_mean', post.mean, ref('posterior_mean'));
  expectClose('posterior_logvar', post.logvar, ref('posterior_logvar'));
  expectClose('posterior_std', post.std, ref('posterior_std'));
});

test('decode matches decoded, and decode(mean) matches the reconstruction', async () => {
  const vae = await vaePromise;
  expectClose('decoded', await vae.decode(ref('latents')), ref('decoded'));
  const post = await vae.encode(ref('image'));
  expectClose('reconstruction', await vae.decode(post.mean), ref('reconstruction'));
});

test('chunked decode equals unchunked decode', async () => {
  const vae = await vaePromise;
  const latents = ref('latents');
  const n = latents.shape[0]!;
  const per = latents.data.length / n;
  // Three frames, so a chunk size of 2 leaves a partial last chunk.
  const data = new Float32Array(3 * per);
  for (let i = 0; i < 3; i++)
    data.set((latents.data as Float32Array).subarray((i % n) * per, ((i % n) + 1) * per), i * per);
  const three = hostTensor(data, [3, ...latents.shape.slice(1)]);
  const whole = await vae.decode(three, { batchSize: 3 });
  for (const batchSize of [1, 2]) {
    const chunked = await vae.decode(three, { batchSize });
    assert.deepEqual(chunked.shape, whole.shape);
    expectClose(`decode batchSize ${batchSize} vs 3`, chunked, whole, 1e-6);
  }
});

test('fp16 variant weights load and match within fp16 tolerance', async () => {
  const weights = readTensors(join(VAE_DIR, 'diffusion_pytorch_model.safetensors'));
  const half = new Map<string, TensorToWrite>();
  const rounded = new Map<string, Float32Array>();
  for (const [name, t] of weights) {
    const bits = f32ToF16(t.data as Float32Array);
    half.set(name, { dtype: 'F16', shape: t.shape, data: bits });
    rounded.set(name, f16ToF32(bits));
  }
  await withTempDir(async (dir) => {
    copyFileSync(join(VAE_DIR, 'config.json'), join(dir, 'config.json'));
    writeSafetensors(join(dir, 'diffusion_pytorch_model.fp16.safetensors'), half, { format: 'pt' });
    const vae16 = await AutoencoderKL.fromPretrained(dir, { variant: 'fp16' });
    const decoded16 = await vae16.decode(ref('latents'));
    // Exact expectation: the float32 model with the same fp16-rounded weights.
    const vaeRounded = AutoencoderKL.fromConfig(vaeConfigJson());
    vaeRounded.loadWeights(rounded);
    expectClose(
      'fp16 decode vs f32 model with fp16-rounded weights',
      decoded16,
      await vaeRounded.decode(ref('latents')),
      1e-6,
    );
    // Against the float32 reference: fp16 weights carry ~5e-4 relative rounding error.
    expectClose('fp16 decode vs float32 reference', decoded16, ref('decoded'), 1e-2);
    const post16 = await vae16.encode(ref('image'));
    expectClose('fp16 posterior_mean vs float32 reference', post16.mean, ref('posterior_mean'), 1e-2);
  });
});

test('encoderForward is differentiable (autodiff matches a finite difference)', async () => {
  const vae = await vaePromise;
  const image = ref('image');
  const program = valueAndGrad(
    (x) => {
      const post = vae.encoderForward(x);
      return op.add(op.sum(op.mul(post.mean, post.mean), [0, 1, 2, 3]), op.sum(post.std, [0, 1, 2, 3]));
    },
    [{ name: 'images', shape: image.shape }],
    { wrt: ['images', 'encoder.conv_in.weight'] },
  );
  const exe = await compile(program);
  const run = async (images: HostTensor): Promise<Record<string, HostTensor>> => {
    const feeds: Record<string, HostTensor> = { images };
    for (const inp of program.inputs) {
      if (inp.role === 'weight') feeds[inp.name] = hostTensor(vae.stateDict.get(inp.name)!, inp.v.shape);
    }
    return exe.run(feeds);
  };
  const out = await run(image);
  const g = out['grad/images']!.data as Float32Array;
  assert.ok((out['grad/encoder.conv_in.weight']!.data as Float32Array).some((v) => v !== 0));
  const norm = Math.sqrt(g.reduce((a, v) => a + v * v, 0));
  const eps = 1e-2;
  const lossAt = async (step: number): Promise<number> => {
    const x = (image.data as Float32Array).map((v, i) => v + (step * g[i]!) / norm);
    return ((await run(hostTensor(x, image.shape)))['loss']!.data as Float32Array)[0]!;
  };
  const fd = ((await lossAt(eps)) - (await lossAt(-eps))) / (2 * eps);
  console.log(
    `  d loss / d images along the gradient: autodiff ${norm.toExponential(4)}, finite difference ${fd.toExponential(4)}`,
  );
  assert.ok(Math.abs(fd - norm) <= 1e-2 * norm);
});
