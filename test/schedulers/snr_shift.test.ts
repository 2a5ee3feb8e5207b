import { test } from 'node:test';
import assert from 'node:assert/strict';
import { snrShiftedBetas } from '../../src/schedulers/scheduling_utils.js';
import { DDPMScheduler } from '../../src/schedulers/ddpm.js';
import { trainSchedulerConfig } from '../../src/training/stages/unet.js';

const cumprod = (b: Float32Array): number[] => {
  let acc = 1;
  return Array.from(b, (x) => (acc *= 1 - x));
};

test('snrShiftedBetas divides every timestep’s SNR by s², keeps s = 1, rejects s ≤ 0', () => {
  const base = DDPMScheduler.fromConfig(trainSchedulerConfig(false)).betas;
  assert.deepEqual(snrShiftedBetas(base, 1), base);
  const a = cumprod(base);
  const b = cumprod(snrShiftedBetas(base, 4));
  const snr = (x: number): number => x / (1 - x);
  let worst = 0;
  for (let t = 0; t < a.length; t += 7)
    worst = Math.max(worst, Math.abs(snr(b[t]!) / snr(a[t]!) - 1 / 16) * 16);
  assert.ok(worst < 1e-3, `relative SNR-ratio error ${worst}`);
  assert.throws(() => snrShiftedBetas(base, 0), /SNR shift must be a positive number/);
});

test('trainSchedulerConfig(noiseShift) reaches the scheduler as trained_betas, zero terminal SNR on top', () => {
  const plain = DDPMScheduler.fromConfig(trainSchedulerConfig(true)).alphasCumprod;
  const shifted = DDPMScheduler.fromConfig(trainSchedulerConfig(true, 8)).alphasCumprod;
  assert.equal(shifted[999], 0, 'zero terminal SNR still holds');
  assert.ok(Math.sqrt(shifted[900]!) < Math.sqrt(plain[900]!) / 4, 'less signal at t = 900');
  assert.equal(trainSchedulerConfig(false)['trained_betas'], undefined);
});
