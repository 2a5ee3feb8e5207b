import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constantWithWarmup, cosineWithWarmup, linearWithWarmup } from '../../src/training/lr_schedule.js';

const near = (a: number, e: number): void => assert.ok(Math.abs(a - e) < 1e-15, `${a} vs ${e}`);

test('constantWithWarmup: linear ramp over warmupSteps, then the base lr', () => {
  const s = constantWithWarmup({ lr: 0.1, warmupSteps: 10 });
  assert.deepEqual([0, 5, 9, 10, 11, 100000].map(s), [0, 0.05, 0.1 * 0.9, 0.1, 0.1, 0.1]);
  assert.equal(constantWithWarmup({ lr: 0.1, warmupSteps: 0 })(0), 0.1);
});

test('linearWithWarmup: ramp, then linear decay reaching 0 at totalSteps', () => {
  const s = linearWithWarmup({ lr: 1e-3, warmupSteps: 10, totalSteps: 110 });
  near(s(0), 0);
  near(s(5), 5e-4);
  near(s(10), 1e-3);
  near(s(60), 5e-4);
  near(s(85), 2.5e-4);
  assert.equal(s(110), 0);
  assert.equal(s(500), 0);
});

test('cosineWithWarmup: half-cosine by default, numCycles like transformers', () => {
  const s = cosineWithWarmup({ lr: 2, warmupSteps: 10, totalSteps: 110 });
  near(s(5), 1);
  near(s(10), 2);
  near(s(35), 2 * 0.5 * (1 + Math.SQRT1_2)); // progress 1/4: ½(1 + cos(π/4))
  near(s(60), 1);
  assert.equal(s(110), 0);
  assert.equal(s(200), 2 * 0.5 * (1 + Math.cos(Math.PI * 1.9))); // past the end transformers keeps the cosine
  const twoHalves = cosineWithWarmup({ lr: 1, warmupSteps: 0, totalSteps: 100, numCycles: 1 });
  near(twoHalves(0), 1);
  near(twoHalves(50), 0);
  near(twoHalves(100), 1);
});

test('schedules reject bad arguments', () => {
  assert.throws(() => constantWithWarmup({ lr: -1, warmupSteps: 0 }), /lr/);
  assert.throws(() => linearWithWarmup({ lr: 1, warmupSteps: 1.5, totalSteps: 10 }), /warmupSteps/);
  assert.throws(() => cosineWithWarmup({ lr: 1, warmupSteps: 0, totalSteps: 10 })(-1), /step/);
});
