// Frame-correlated (mixed) noise: values computed from the formula, and the statistics it promises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator } from '../../src/engine/random.js';
import { checkFrameNoiseShared, mixFrameNoise } from '../../src/schedulers/frame_noise.js';

test('mixFrameNoise follows √ρ·shared + √(1−ρ)·own element by element', () => {
  const shape = [2, 3, 4, 2, 5];
  const own = new Generator(1).normal(2 * 3 * 4 * 10);
  const shared = new Generator(2).normal(2 * 3 * 10);
  const mixed = mixFrameNoise(own.slice(), shared, shape, 0.36);
  for (let b = 0; b < 2; b++)
    for (let c = 0; c < 3; c++)
      for (let f = 0; f < 4; f++)
        for (let k = 0; k < 10; k++) {
          const i = ((b * 3 + c) * 4 + f) * 10 + k;
          const want = 0.6 * shared[(b * 3 + c) * 10 + k]! + 0.8 * own[i]!;
          assert.ok(Math.abs(mixed[i]! - want) < 1e-6, `element ${i}: ${mixed[i]} vs ${want}`);
        }
  assert.deepEqual(mixFrameNoise(own.slice(), shared, shape, 0), own, 'ρ = 0 leaves the noise unchanged');
});

test('mixed noise keeps unit variance; frames of a clip correlate with coefficient ρ, clips do not', () => {
  const [b, c, f, h, w] = [2, 1, 3, 100, 100];
  const hw = h * w;
  const noise = mixFrameNoise(
    new Generator(3).normal(b * c * f * hw),
    new Generator(4).normal(b * c * hw),
    [b, c, f, h, w],
    0.5,
  );
  const frame = (bi: number, fi: number) => noise.subarray((bi * f + fi) * hw, (bi * f + fi + 1) * hw);
  const corr = (x: Float32Array, y: Float32Array) => {
    let sxy = 0;
    for (let i = 0; i < x.length; i++) sxy += x[i]! * y[i]!;
    return sxy / x.length;
  };
  let v = 0;
  for (const x of noise) v += x * x;
  v /= noise.length;
  // Standard errors: variance ≈ √(2/60000) ≈ 0.006; correlations over 10 000 pairs ≈ 0.01.
  assert.ok(Math.abs(v - 1) < 0.03, `variance ${v}`);
  assert.ok(Math.abs(corr(frame(0, 0), frame(0, 1)) - 0.5) < 0.05, 'frames 0 and 1 of clip 0');
  assert.ok(Math.abs(corr(frame(1, 0), frame(1, 2)) - 0.5) < 0.05, 'frames 0 and 2 of clip 1');
  assert.ok(Math.abs(corr(frame(0, 0), frame(1, 0))) < 0.05, 'frame 0 of clips 0 and 1');
});

test('mixFrameNoise and checkFrameNoiseShared reject bad input, naming it', () => {
  assert.throws(() => checkFrameNoiseShared(1), /frame_noise_shared must be a number in \[0, 1\), got 1/);
  assert.throws(() => checkFrameNoiseShared(-0.1, '--x'), /--x must be a number in \[0, 1\), got -0\.1/);
  assert.throws(() => checkFrameNoiseShared(Number.NaN), /got NaN/);
  assert.equal(checkFrameNoiseShared(0.5), 0.5);
  const n = new Float32Array(8);
  assert.throws(
    () => mixFrameNoise(n, new Float32Array(4), [1, 1, 2, 2], 0.5),
    /shape must be \[B, C, F, h, w\]/,
  );
  assert.throws(() => mixFrameNoise(n, new Float32Array(4), [1, 1, 3, 2, 2], 0.5), /noise has 8 values/);
  assert.throws(() => mixFrameNoise(n, new Float32Array(3), [1, 1, 2, 2, 2], 0.5), /shared has 3 values/);
});
