import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EMA } from '../../src/training/ema.js';

test('EMA with warmup follows diffusers EMAModel: copy first, then min(decay, (1+t)/(10+t))', () => {
  const params = new Map([['w', Float32Array.of(1, 2)]]);
  const ema = new EMA(params, { decay: 0.999, warmup: true });
  assert.deepEqual([...ema.shadow.get('w')!], [1, 2]);
  params.set('w', Float32Array.of(3, 4));
  ema.update(params); // optimization_step 1 → decay 0
  assert.deepEqual([...ema.shadow.get('w')!], [3, 4]);
  params.set('w', Float32Array.of(5, 6));
  ema.update(params); // t = 1 → decay 2/11: shadow = 3 + (9/11)·2
  assert.deepEqual([...ema.shadow.get('w')!], [Math.fround(3 + 18 / 11), Math.fround(4 + 18 / 11)]);
  assert.equal(ema.optimizationStep, 2);
  assert.equal(ema.decayAt(3), 3 / 12);
  assert.equal(ema.decayAt(1000), 1000 / 1009);
  assert.equal(ema.decayAt(20000), 0.999);
});

test('EMA without warmup uses the constant decay from the first update', () => {
  const params = new Map([['w', Float32Array.of(1)]]);
  const ema = new EMA(params, { decay: 0.9 });
  params.get('w')![0] = 2;
  ema.update(params);
  assert.deepEqual([...ema.shadow.get('w')!], [Math.fround(1.1)]);
  ema.update(params);
  assert.deepEqual([...ema.shadow.get('w')!], [Math.fround(Math.fround(1.1) - 0.1 * (Math.fround(1.1) - 2))]);
  // The shadow is a copy: changing params does not move it until update().
  params.get('w')![0] = 100;
  assert.ok(ema.shadow.get('w')![0]! < 2);
});

test('EMA copyTo, stateDict/loadStateDict and validation', () => {
  const params = new Map([
    ['a', Float32Array.of(1, 1)],
    ['b', Float32Array.of(4)],
  ]);
  const ema = new EMA(params, { decay: 0.5 });
  ema.update(
    new Map([
      ['a', Float32Array.of(3, 5)],
      ['b', Float32Array.of(0)],
    ]),
  );
  const target = new Map([
    ['a', new Float32Array(2)],
    ['b', new Float32Array(1)],
  ]);
  ema.copyTo(target);
  assert.deepEqual([...target.get('a')!], [2, 3]);
  assert.deepEqual([...target.get('b')!], [2]);
  const other = new EMA(params, { decay: 0.5 });
  other.loadStateDict(ema.stateDict(), ema.optimizationStep);
  assert.deepEqual(other.stateDict(), ema.stateDict());
  assert.equal(other.optimizationStep, 1);
  assert.throws(() => ema.update(new Map([['a', new Float32Array(2)]])), /"b" is missing/);
  assert.throws(() => ema.update(new Map([...params, ['c', new Float32Array(1)]])), /"c" is not tracked/);
  assert.throws(() => ema.copyTo(new Map([...params, ['a', new Float32Array(3)]])), /"a" has 3 elements/);
  assert.throws(() => new EMA(params, { decay: 1.5 }), /decay/);
});
