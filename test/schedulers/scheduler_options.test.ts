// Behaviour of the scheduler options beyond the fixture configs, checked against values known independently
// (published timestep tables, closed-form formulas evaluated in float64, mathematical identities).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  DDIMScheduler,
  DDPMScheduler,
  DPMSolverMultistepScheduler,
  SeededNormalNoise,
  loadScheduler,
  schedulerFromConfig,
} from '../../src/schedulers/index.js';
import { PARITY_DIR, closeness, fixtureExists } from './parity_fixture.js';

const SD = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
};

test('timestep spacings match the published tables (Lin et al. 2023, Table 2; diffusers docs)', () => {
  const ddim = (extra: Record<string, unknown>, n: number): number[] => {
    const s = DDIMScheduler.fromConfig({ ...SD, ...extra });
    s.setTimesteps(n);
    return s.timesteps;
  };
  assert.deepEqual(
    ddim({ timestep_spacing: 'trailing' }, 10),
    [999, 899, 799, 699, 599, 499, 399, 299, 199, 99],
  );
  assert.deepEqual(
    ddim({ timestep_spacing: 'linspace' }, 10),
    [999, 888, 777, 666, 555, 444, 333, 222, 111, 0],
  );
  assert.deepEqual(
    ddim({ timestep_spacing: 'leading', steps_offset: 1 }, 10),
    [901, 801, 701, 601, 501, 401, 301, 201, 101, 1],
  );
  // 1000/3 is not an integer: trailing rounds 1000, 666.67, 333.33 half-to-even, then subtracts 1.
  assert.deepEqual(ddim({ timestep_spacing: 'trailing' }, 3), [999, 666, 332]);
  const dpm = DPMSolverMultistepScheduler.fromConfig({ ...SD, timestep_spacing: 'leading', steps_offset: 1 });
  dpm.setTimesteps(4); // step ratio 1000 // 5 = 200, the final entry (0) is dropped
  assert.deepEqual(dpm.timesteps, [801, 601, 401, 201]);
});

test('DDIM with eta > 0 adds eta·σ_t(1)·z with σ_t from DDIM eq. (16) (float64 reference)', () => {
  const s = DDIMScheduler.fromConfig({ ...SD, set_alpha_to_one: false, steps_offset: 1, clip_sample: false });
  s.setTimesteps(10);
  const n = 64;
  const gen = new SeededNormalNoise(3);
  const x = gen.normal(n);
  const eps = gen.normal(n);
  const z = gen.normal(n);
  const eta = 0.7;
  const t = 501;
  const r = s.step(eps, t, x, { eta, noise: z });
  const a = s.alphasCumprod[t] as number;
  const ap = s.alphasCumprod[t - 100] as number;
  const sigma = eta * Math.sqrt(((1 - ap) / (1 - a)) * (1 - a / ap));
  const expected = Array.from(x, (xi, i) => {
    const x0 = (xi - Math.sqrt(1 - a) * (eps[i] as number)) / Math.sqrt(a);
    return (
      Math.sqrt(ap) * x0 + Math.sqrt(1 - ap - sigma * sigma) * (eps[i] as number) + sigma * (z[i] as number)
    );
  });
  const c = closeness(r.prevSample, expected, 1e-5, 1e-5);
  assert.ok(c.ok, `max |Δ| ${c.maxAbs}`);
  assert.throws(() => s.step(eps, t, x, { eta }), /opts\.noise.*opts\.generator/);
  assert.throws(() => s.step(eps, t, x, { eta, noise: z, generator: gen }), /not both/);
  const viaGenerator = s.step(eps, t, x, { eta, generator: new SeededNormalNoise(9) });
  assert.deepEqual(
    viaGenerator.prevSample,
    s.step(eps, t, x, { eta, noise: new SeededNormalNoise(9).normal(n) }).prevSample,
  );
});

test('DDIM v_prediction and clip_sample follow the closed forms', () => {
  const s = DDIMScheduler.fromConfig({
    ...SD,
    prediction_type: 'v_prediction',
    clip_sample: true,
    clip_sample_range: 0.5,
  });
  s.setTimesteps(20);
  const gen = new SeededNormalNoise(5);
  const x = gen.normal(32);
  const v = gen.normal(32);
  const t = s.timesteps[3] as number;
  const r = s.step(v, t, x);
  const a = s.alphasCumprod[t] as number;
  const x0 = Array.from(x, (xi, i) =>
    Math.min(0.5, Math.max(-0.5, Math.sqrt(a) * xi - Math.sqrt(1 - a) * (v[i] as number))),
  );
  assert.ok(closeness(r.predOriginalSample as Float32Array, x0, 1e-6, 1e-6).ok);
});

test('DDPM variance types: fixed_small = β̃_t, fixed_large = β_t, fixed_small_log = exp(½ log β̃_t)', () => {
  const gen = new SeededNormalNoise(11);
  const x = gen.normal(16);
  const eps = gen.normal(16);
  const z = gen.normal(16);
  for (const varianceType of ['fixed_small', 'fixed_large', 'fixed_small_log']) {
    const s = DDPMScheduler.fromConfig({ ...SD, variance_type: varianceType, clip_sample: false });
    s.setTimesteps(50);
    const t = 480;
    const mean = s.step(eps, t, x, { noise: new Float32Array(16) }).prevSample;
    const withNoise = s.step(eps, t, x, { noise: z }).prevSample;
    const a = s.alphasCumprod[t] as number;
    const ap = s.alphasCumprod[t - 20] as number;
    const beta = 1 - a / ap;
    const variance = varianceType === 'fixed_large' ? beta : ((1 - ap) / (1 - a)) * beta;
    const std = Math.sqrt(variance);
    const muExpected = Array.from(x, (xi, i) => {
      const x0 = (xi - Math.sqrt(1 - a) * (eps[i] as number)) / Math.sqrt(a);
      return ((Math.sqrt(ap) * beta) / (1 - a)) * x0 + ((Math.sqrt(a / ap) * (1 - ap)) / (1 - a)) * xi;
    });
    assert.ok(closeness(mean, muExpected, 1e-5, 1e-5).ok, `${varianceType} mean`);
    const added = Array.from(withNoise, (w, i) => w - (mean[i] as number));
    assert.ok(
      closeness(
        added,
        Array.from(z, (zi) => std * zi),
        1e-6,
        1e-4,
      ).ok,
      `${varianceType} noise scale`,
    );
  }
  const s = DDPMScheduler.fromConfig(SD);
  s.setTimesteps(10);
  assert.throws(() => s.step(eps, 900, x), /opts\.noise/);
  assert.throws(() => s.step(eps, 901, x, { noise: z }), /not in the current schedule/);
});

test('DPM-Solver-1 is DDIM (Lu et al. 2022, Sec. 4.1): first-order DPM-Solver(++) equals DDIM(eta=0)', () => {
  const ddim = DDIMScheduler.fromConfig({ ...SD, set_alpha_to_one: false, clip_sample: false });
  ddim.setTimesteps(10); // 900, 800, ..., 0 (step ratio 100)
  for (const algorithm of ['dpmsolver++', 'dpmsolver']) {
    const dpm = DPMSolverMultistepScheduler.fromConfig({
      ...SD,
      solver_order: 1,
      algorithm_type: algorithm,
      final_sigmas_type: 'sigma_min',
      timestep_spacing: 'leading',
    });
    dpm.setTimesteps(9); // 900, ..., 100, then σ of t = 0
    assert.deepEqual(dpm.timesteps, ddim.timesteps.slice(0, 9));
    const gen = new SeededNormalNoise(21);
    let a: Float32Array = gen.normal(128);
    let b: Float32Array = Float32Array.from(a);
    let worst = 0;
    for (const t of dpm.timesteps) {
      const eps = gen.normal(128);
      a = ddim.step(eps, t, a).prevSample;
      b = dpm.step(eps, t, b).prevSample;
      worst = Math.max(worst, closeness(b, a, 0, 0).maxAbs);
    }
    assert.ok(worst < 2e-5, `${algorithm}: max |DPM − DDIM| ${worst}`);
  }
});

test('unsupported options and unknown classes are rejected by name', () => {
  assert.throws(
    () => schedulerFromConfig({ _class_name: 'DDIMScheduler', thresholding: true }),
    /thresholding/,
  );
  assert.throws(
    () => schedulerFromConfig({ _class_name: 'DDPMScheduler', variance_type: 'learned_range' }),
    /variance_type/,
  );
  assert.throws(
    () => schedulerFromConfig({ _class_name: 'DPMSolverMultistepScheduler', use_beta_sigmas: true }),
    /use_beta_sigmas/,
  );
  assert.throws(
    () => schedulerFromConfig({ _class_name: 'DPMSolverMultistepScheduler', algorithm_type: 'dpmsolver' }),
    /final_sigmas_type/,
  );
  assert.throws(
    () => schedulerFromConfig({ _class_name: 'DDIMScheduler', prediction_type: 'flow' }),
    /prediction_type/,
  );
  assert.throws(() => schedulerFromConfig({ _class_name: 'DDIMScheduler', beta_start: '0.1' }), /beta_start/);
  assert.throws(() => schedulerFromConfig({ _class_name: 'PNDMScheduler' }), /PNDMScheduler.*override/);
  assert.throws(() => schedulerFromConfig({}), /_class_name/);
  assert.throws(
    () => schedulerFromConfig({ _class_name: 'DDIMScheduler', trained_betas: [0.1, 0.2] }),
    /trained_betas/,
  );
  const s = schedulerFromConfig({ _class_name: 'DDIMScheduler' });
  assert.throws(() => s.step(new Float32Array(4), 10, new Float32Array(4)), /setTimesteps/);
  s.setTimesteps(10);
  assert.throws(() => s.step(new Float32Array(4), 10, new Float32Array(5)), /length mismatch/);
  assert.throws(() => s.setTimesteps(1001), /num_inference_steps/);
  assert.throws(
    () => s.addNoise(new Float32Array(6), new Float32Array(6), [1, 2, 3, 4]),
    /equal batch items/,
  );
});

test('rescale_betas_zero_snr gives ᾱ_T = 0 and keeps ᾱ_0 (Lin et al. 2023, Algorithm 1)', () => {
  const plain = DDIMScheduler.fromConfig(SD);
  const s = DDIMScheduler.fromConfig({ ...SD, rescale_betas_zero_snr: true });
  assert.equal(s.alphasCumprod[999], 0);
  assert.ok(Math.abs((s.alphasCumprod[0] as number) - (plain.alphasCumprod[0] as number)) < 1e-6);
  // sqrt(ᾱ_t) is an affine function of the original sqrt(ᾱ_t).
  const k =
    Math.sqrt(plain.alphasCumprod[0] as number) /
    (Math.sqrt(plain.alphasCumprod[0] as number) - Math.sqrt(plain.alphasCumprod[999] as number));
  const t = 500;
  const expected =
    (Math.sqrt(plain.alphasCumprod[t] as number) - Math.sqrt(plain.alphasCumprod[999] as number)) * k;
  assert.ok(Math.abs(Math.sqrt(s.alphasCumprod[t] as number) - expected) < 1e-6);
  const dpm = DPMSolverMultistepScheduler.fromConfig({ ...SD, rescale_betas_zero_snr: true });
  assert.equal(dpm.alphasCumprod[999], 2 ** -24); // keeps the first σ finite
});

test(
  'loadScheduler reads configs with -Infinity and honours the class override',
  { skip: !fixtureExists('scheduler') },
  async () => {
    const dpm = await loadScheduler(join(PARITY_DIR, 'scheduler', 'dpmsolver_multistep'));
    assert.ok(dpm instanceof DPMSolverMultistepScheduler);
    assert.equal(dpm.config.lambdaMinClipped, Number.NEGATIVE_INFINITY);
    const asDpm = await loadScheduler(join(PARITY_DIR, 'scheduler', 'ddim'), 'dpm');
    assert.ok(asDpm instanceof DPMSolverMultistepScheduler);
    asDpm.setTimesteps(4); // the DDIM config's "leading" spacing and steps_offset carry over
    assert.deepEqual(asDpm.timesteps, [801, 601, 401, 201]);
    await assert.rejects(loadScheduler(join(PARITY_DIR, 'no_such_dir')), /scheduler_config\.json/);
  },
);

test('SeededNormalNoise is deterministic and standard normal', () => {
  const a = new SeededNormalNoise(42).normal(20001);
  assert.deepEqual(a, new SeededNormalNoise(42).normal(20001));
  assert.notDeepEqual(a.subarray(0, 8), new SeededNormalNoise(43).normal(8));
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  const variance = a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length;
  assert.ok(Math.abs(mean) < 0.03 && Math.abs(variance - 1) < 0.04, `mean ${mean}, variance ${variance}`);
});
