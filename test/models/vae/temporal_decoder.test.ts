// Kinema's VidRD temporal decoder option: naming, the temporal layer against a host computation, exact
// equality with the image decoder when freshly initialised, frame mixing, and gradient flow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AutoencoderKL } from '../../../src/models/vae/autoencoder_kl.js';
import { TemporalConvLayer } from '../../../src/models/vae/temporal.js';
import { compileWithWeights } from '../../../src/nn/compile.js';
import type { StateDict } from '../../../src/nn/module.js';
import { valueAndGrad } from '../../../src/engine/autodiff.js';
import { compile, hostTensor } from '../../../src/engine/runtime.js';
import { interpret } from '../../../src/engine/interpret.js';
import { trace } from '../../../src/engine/tensor.js';
import type { HostTensor } from '../../../src/engine/runtime.js';
import * as op from '../../../src/engine/ops.js';
import { Generator } from '../../../src/engine/random.js';
import { VAE_DIR, maxAbsDiff, readTensors, relativeError, vaeConfigJson } from './vae_fixture.js';

const temporalConfig = (): Record<string, unknown> => ({ ...vaeConfigJson(), temporal_decoder: true });

function randomTensor(shape: number[], seed: number, scale = 1): HostTensor {
  const v = new Generator(seed).normal(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < v.length; i++) v[i]! *= scale;
  return hostTensor(v, shape);
}

/** Fixture weights plus the temporal layers' own initialisation (last conv of each layer zero). */
function fixtureWithFreshTemporal(vae: AutoencoderKL): StateDict {
  const sd = vae.initParameters(7);
  for (const [name, t] of readTensors(join(VAE_DIR, 'diffusion_pytorch_model.safetensors'))) {
    sd.set(name, t.data as Float32Array);
  }
  return sd;
}

/** Gives every temporal parameter random values (so the layers do something). */
function randomizeTemporal(sd: StateDict, seed: number, all = false): StateDict {
  const out = new Map(sd);
  const rng = new Generator(seed);
  for (const [name, v] of sd) {
    if (!all && !name.includes('.temp_convs.')) continue;
    const r = rng.normal(v.length);
    const isNormWeight = /convs\.(0|4|8)\.weight$/.test(name);
    out.set(
      name,
      r.map((x) => (isNormWeight ? 1 + 0.1 * x : 0.2 * x)),
    );
  }
  return out;
}

test('temporal layers use VidRD names under decoder.up_blocks.{i}.temp_convs.{j}', () => {
  const cfg = temporalConfig();
  const temporal = AutoencoderKL.fromConfig(cfg);
  const plain = AutoencoderKL.fromConfig(vaeConfigJson());
  const names = [...temporal.namedParameters().keys()];
  const extra = names.filter((n) => !plain.namedParameters().has(n));
  const blocks = (cfg['block_out_channels'] as number[]).length;
  const layers = (cfg['layers_per_block'] as number) + 1;
  const expected: string[] = [];
  for (let i = 0; i < blocks; i++)
    for (let j = 0; j < layers; j++)
      for (const k of [0, 3, 4, 7, 8, 11])
        for (const p of ['weight', 'bias'])
          expected.push(`decoder.up_blocks.${i}.temp_convs.${j}.convs.${k}.${p}`);
  assert.deepEqual(extra.sort(), expected.sort());
  const specs = temporal.namedParameters();
  assert.deepEqual(specs.get('decoder.up_blocks.0.temp_convs.0.convs.3.weight')!.shape, [16, 16, 3, 1, 1]);
  assert.equal(specs.get('decoder.up_blocks.0.temp_convs.0.convs.11.weight')!.init.kind, 'zeros');
  assert.equal(specs.get('decoder.up_blocks.0.temp_convs.0.convs.11.bias')!.init.kind, 'zeros');
});

/** Host computation of one TemporalConvLayer on x [B, C, F, H, W] (GroupNorm eps 1e-5). */
function hostTemporalLayer(x: HostTensor, sd: StateDict, groups: number): Float32Array {
  const [b, c, f, h, w] = x.shape as [number, number, number, number, number];
  const hw = h * w;
  const xs = x.data as Float32Array;
  let cur = Float64Array.from(xs);
  for (const [norm, conv] of [
    [0, 3],
    [4, 7],
    [8, 11],
  ] as const) {
    const gamma = sd.get(`convs.${norm}.weight`)!;
    const beta = sd.get(`convs.${norm}.bias`)!;
    const act = new Float64Array(cur.length);
    const per = (c / groups) * f * hw;
    for (let n = 0; n < b * groups; n++) {
      const seg = cur.subarray(n * per, (n + 1) * per);
      const mean = seg.reduce((a, v) => a + v, 0) / per;
      const variance = seg.reduce((a, v) => a + (v - mean) ** 2, 0) / per;
      for (let i = 0; i < per; i++) {
        const ch = ((n % groups) * (c / groups) + Math.floor(i / (f * hw))) % c;
        const y = ((seg[i]! - mean) / Math.sqrt(variance + 1e-5)) * gamma[ch]! + beta[ch]!;
        act[n * per + i] = y / (1 + Math.exp(-y));
      }
    }
    const wt = sd.get(`convs.${conv}.weight`)!;
    const bias = sd.get(`convs.${conv}.bias`)!;
    const out = new Float64Array(cur.length);
    for (let n = 0; n < b; n++)
      for (let o = 0; o < c; o++)
        for (let t = 0; t < f; t++)
          for (let p = 0; p < hw; p++) {
            let s = bias[o]!;
            for (let ci = 0; ci < c; ci++)
              for (let k = 0; k < 3; k++) {
                const tt = t + k - 1;
                if (tt >= 0 && tt < f)
                  s += wt[(o * c + ci) * 3 + k]! * act[((n * c + ci) * f + tt) * hw + p]!;
              }
            out[((n * c + o) * f + t) * hw + p] = s;
          }
    cur = out;
  }
  return Float32Array.from(cur, (v, i) => v + xs[i]!);
}

test('TemporalConvLayer matches a host computation', async () => {
  const groups = 2;
  const layer = new TemporalConvLayer(4, groups);
  const local = randomizeTemporal(layer.initParameters(3), 11, true);
  const x = randomTensor([2, 4, 3, 2, 3], 5);
  const fn = await compileWithWeights((t) => layer.forward(t), [{ name: 'x', shape: x.shape }], local);
  const got = (await fn.exe.run({ x }))['out0']!;
  const expected = hostTemporalLayer(x, local, groups);
  const err = maxAbsDiff(got.data as Float32Array, expected);
  console.log(`  temporal layer vs host: max abs diff ${err.toExponential(2)}`);
  assert.ok(err < 1e-4, `max abs diff ${err}`);
});

test('freshly initialised temporal decoder equals the image decoder exactly', async () => {
  const plain = await AutoencoderKL.fromPretrained(VAE_DIR);
  const temporal = AutoencoderKL.fromConfig(temporalConfig());
  const sd = fixtureWithFreshTemporal(temporal);
  temporal.loadWeights(sd);
  const io = readTensors(join(VAE_DIR, 'io.safetensors'));
  const latents = io.get('latents')!;
  const frames = latents.shape[0]!; // the fixture's latents as one video
  // Exact: the reference interpreter evaluates both graphs op by op (a zero conv adds exactly 0).
  const small = randomTensor([frames, temporal.config.latentChannels, 2, 2], 31);
  const evaluate = (vae: AutoencoderKL): Float32Array => {
    const program = trace(
      (z) => vae.decoderForward(z, { numFrames: frames }),
      [{ name: 'z', shape: small.shape }],
    );
    const feeds: Record<string, HostTensor> = { z: small };
    for (const inp of program.inputs)
      if (inp.role === 'weight') feeds[inp.name] = hostTensor(sd.get(inp.name)!, inp.v.shape);
    return interpret(program, feeds)['out0']!.data as Float32Array;
  };
  assert.equal(maxAbsDiff(evaluate(temporal), evaluate(plain)), 0);
  // Through ONNX Runtime the two graphs are optimised differently, so allow float32 rounding.
  const expected = await plain.decode(latents);
  const got = await temporal.decode(latents, { numFrames: frames });
  const err = relativeError(got, expected);
  console.log(`  ONNX Runtime, temporal (fresh) vs image decoder: ${err.toExponential(2)} of max |output|`);
  assert.ok(err <= 1e-6);
  assert.ok(relativeError(got, io.get('decoded')!) <= 1e-4);
});

test('trained temporal layers mix frames; single frames skip them', async () => {
  const plain = await AutoencoderKL.fromPretrained(VAE_DIR);
  const temporal = AutoencoderKL.fromConfig(temporalConfig());
  temporal.loadWeights(randomizeTemporal(fixtureWithFreshTemporal(temporal), 13));
  const latents = readTensors(join(VAE_DIR, 'io.safetensors')).get('latents')!;
  const n = latents.shape[0]!;
  const base = await plain.decode(latents);
  const video = await temporal.decode(latents, { numFrames: n });
  assert.ok(maxAbsDiff(video.data as Float32Array, base.data as Float32Array) > 1e-3);
  const single = await temporal.decode(latents, { numFrames: 1 });
  assert.equal(maxAbsDiff(single.data as Float32Array, base.data as Float32Array), 0);
  // Changing frame 0's latent changes frame 1's image only through the temporal layers.
  const edited = Float32Array.from(latents.data as Float32Array);
  const per = edited.length / n;
  for (let i = 0; i < per; i++) edited[i]! += 0.5;
  const videoEdited = await temporal.decode(hostTensor(edited, latents.shape), { numFrames: n });
  const outPer = video.data.length / n;
  const frame1 = (t: HostTensor): Float32Array => (t.data as Float32Array).subarray(outPer, 2 * outPer);
  assert.ok(maxAbsDiff(frame1(videoEdited), frame1(video)) > 1e-4);
  await assert.rejects(temporal.decode(latents, { numFrames: n, batchSize: 1 }), /multiple of numFrames/);
});

test('gradients flow through the temporal decoder (and match finite differences)', async () => {
  const vae = AutoencoderKL.fromConfig(temporalConfig());
  const sd = vae.initParameters(21);
  const frames = 2;
  const z = randomTensor([frames, vae.config.latentChannels, 4, 4], 22);
  const outShape = [frames, vae.config.outChannels, 4 * vae.scaleFactor, 4 * vae.scaleFactor];
  const r = randomTensor(outShape, 23);
  const program = valueAndGrad(
    (zt, rt) => op.sum(op.mul(vae.decoderForward(zt, { numFrames: frames }), rt), [0, 1, 2, 3]),
    [
      { name: 'z', shape: z.shape },
      { name: 'r', shape: r.shape },
    ],
  );
  const exe = await compile(program);
  const run = async (weights: StateDict): Promise<Record<string, HostTensor>> => {
    const feeds: Record<string, HostTensor> = { z, r };
    for (const inp of program.inputs)
      if (inp.role === 'weight') feeds[inp.name] = hostTensor(weights.get(inp.name)!, inp.v.shape);
    return exe.run(feeds);
  };
  const out = await run(sd);
  const last = 'decoder.up_blocks.0.temp_convs.0.convs.11.bias';
  const g = out[`grad/${last}`]!.data as Float32Array;
  for (const t of Object.values(out)) assert.ok((t.data as Float32Array).every(Number.isFinite));
  assert.ok(
    g.some((v) => v !== 0),
    'the zero-initialised last conv receives a gradient',
  );
  assert.ok(
    (out['grad/decoder.up_blocks.0.temp_convs.0.convs.11.weight']!.data as Float32Array).some((v) => v !== 0),
  );
  // Central difference along the gradient direction d = g / |g| of the zero-initialised conv: slope |g|.
  const params = [last, last.replace(/bias$/, 'weight')];
  const grads = params.map((n) => out[`grad/${n}`]!.data as Float32Array);
  const norm = Math.sqrt(grads.reduce((a, gv) => a + gv.reduce((b, v) => b + v * v, 0), 0));
  const eps = 1e-2;
  const lossAt = async (step: number): Promise<number> => {
    const w = new Map(sd);
    params.forEach((n, k) =>
      w.set(
        n,
        sd.get(n)!.map((v, i) => v + (step * grads[k]![i]!) / norm),
      ),
    );
    return ((await run(w))['loss']!.data as Float32Array)[0]!;
  };
  const fd = ((await lossAt(eps)) - (await lossAt(-eps))) / (2 * eps);
  console.log(
    `  directional derivative along the gradient: autodiff |g| = ${norm.toExponential(4)}, finite difference ${fd.toExponential(4)}`,
  );
  assert.ok(Math.abs(fd - norm) <= 1e-2 * norm, `autodiff ${norm} vs finite difference ${fd}`);
});
