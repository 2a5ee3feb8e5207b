import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, philox4x32 } from '../../src/engine/random.js';

const hex = (words: ArrayLike<number>): string[] => Array.from(words, (w) => w.toString(16).padStart(8, '0'));

test('Philox4x32-10 matches the Random123 known-answer vectors', () => {
  // From Random123's kat_vectors (philox4x32 10: counter, key → output).
  assert.deepEqual(hex(philox4x32([0, 0, 0, 0], [0, 0])), ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
  const ones = 0xffffffff;
  assert.deepEqual(hex(philox4x32([ones, ones, ones, ones], [ones, ones])), [
    '408f276d',
    '41c83b0e',
    'a20bc7c6',
    '6d5451fd',
  ]);
  assert.deepEqual(
    hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0])),
    ['d16cfe09', '94fdcceb', '5001e420', '24126ea1'],
  );
});

test('the stream is block i = philox(counter i, key = seed), carried across 32-bit counter words', () => {
  const g = new Generator(0);
  assert.deepEqual(hex(g.uint32(4)), ['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
  assert.deepEqual([...g.uint32(4)], [...philox4x32([1, 0, 0, 0], [0, 0])]);
  const seed = 0x123456789abcn;
  const h = new Generator(seed);
  assert.deepEqual(
    [...h.uint32(8)],
    [...philox4x32([0, 0, 0, 0], [0x56789abc, 0x1234]), ...philox4x32([1, 0, 0, 0], [0x56789abc, 0x1234])],
  );
  assert.deepEqual([...new Generator(Number(seed)).uint32(8)], [...new Generator(seed).uint32(8)]);
  // Jump to the end of the first counter word and check the carry into the second.
  const state = JSON.parse(h.getState()) as { counter: number[]; used: number };
  h.setState(JSON.stringify({ ...state, counter: [0xffffffff, 0, 0, 0], used: 4 }));
  assert.deepEqual([...h.uint32(4)], [...philox4x32([0, 1, 0, 0], [0x56789abc, 0x1234])]);
});

test('uniform and normal have fixed values derived from the known-answer block', () => {
  const kat = [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8];
  const u = new Generator(0).uniform(4);
  assert.deepEqual(
    [...u],
    kat.map((w) => (w >>> 8) / 2 ** 24),
  );
  assert.deepEqual([...u.subarray(0, 2)], [0x6627e8 / 2 ** 24, 0xe169c5 / 2 ** 24]);
  const n = new Generator(0).normal(3);
  const boxMuller = (a: number, b: number): [number, number] => {
    const r = Math.sqrt(-2 * Math.log((a + 0.5) / 2 ** 32));
    return [r * Math.cos((2 * Math.PI * b) / 2 ** 32), r * Math.sin((2 * Math.PI * b) / 2 ** 32)];
  };
  const [z0, z1] = boxMuller(kat[0]!, kat[1]!);
  const [z2] = boxMuller(kat[2]!, kat[3]!);
  assert.deepEqual([...n], [Math.fround(z0), Math.fround(z1), Math.fround(z2)]);
  // The same draws computed with Python's math module and rounded to float32 (numpy).
  assert.deepEqual(
    [...new Generator(0).normal(4)],
    [0.991137683391571, -0.9246625900268555, -0.6176089644432068, -0.48206859827041626],
  );
});

test('1e6 draws have the right mean and spread', () => {
  const count = 1_000_000;
  const u = new Generator(12345).uniform(count);
  let sum = 0;
  let sumSq = 0;
  let min = 1;
  let max = 0;
  for (const x of u) {
    sum += x;
    sumSq += x * x;
    min = Math.min(min, x);
    max = Math.max(max, x);
  }
  const mean = sum / count;
  // Standard error of the mean is sqrt(1/12/n) ≈ 2.9e-4; allow 5σ.
  assert.ok(Math.abs(mean - 0.5) < 1.5e-3, `uniform mean ${mean}`);
  assert.ok(Math.abs(sumSq / count - mean * mean - 1 / 12) < 1e-3, 'uniform variance');
  assert.ok(min >= 0 && max < 1 && min < 1e-5 && max > 1 - 1e-5, `range [${min}, ${max}]`);
  const z = new Generator(777).normal(count);
  sum = 0;
  sumSq = 0;
  let beyond2 = 0;
  for (const x of z) {
    sum += x;
    sumSq += x * x;
    if (Math.abs(x) > 2) beyond2++;
  }
  const zMean = sum / count;
  const zStd = Math.sqrt(sumSq / count - zMean * zMean);
  assert.ok(Math.abs(zMean) < 5e-3, `normal mean ${zMean}`); // SE 1e-3
  assert.ok(Math.abs(zStd - 1) < 4e-3, `normal std ${zStd}`); // SE ≈ 7e-4
  assert.ok(Math.abs(beyond2 / count - 0.0455) < 2e-3, `P(|z| > 2) = ${beyond2 / count}`); // 0.0455
});

test('getState / setState resume the identical stream at any position', () => {
  const whole = new Generator(99);
  const reference = [...whole.uint32(3), ...whole.uniform(5), ...whole.normal(7), ...whole.uint32(9)];
  const g = new Generator(99);
  const first = [...g.uint32(3), ...g.uniform(5)];
  const saved = g.getState();
  assert.doesNotThrow(() => JSON.parse(saved));
  const rest = [...g.normal(7), ...g.uint32(9)];
  assert.deepEqual([...first, ...rest], reference);
  const resumed = new Generator(1); // different seed: the state carries the key
  resumed.setState(saved);
  assert.deepEqual([...first, ...resumed.normal(7), ...resumed.uint32(9)], reference);
  assert.notDeepEqual([...new Generator(100).uint32(4)], [...new Generator(99).uint32(4)]);
});

test('bad seeds, counts and states are rejected', () => {
  assert.throws(() => new Generator(-1), /seed/);
  assert.throws(() => new Generator(1.5), /seed/);
  assert.throws(() => new Generator(2n ** 64n), /seed/);
  assert.throws(() => new Generator(0).uniform(-1), /count/);
  const g = new Generator(0);
  assert.throws(() => g.setState('nope'), /JSON/);
  assert.throws(() => g.setState('{"algorithm":"mt19937"}'), /philox4x32-10/);
  assert.throws(
    () => g.setState('{"algorithm":"philox4x32-10","key":[0,0],"counter":[0,0,0],"used":0}'),
    /counter/,
  );
  assert.throws(
    () => g.setState('{"algorithm":"philox4x32-10","key":[0,-1],"counter":[0,0,0,0],"used":0}'),
    /key/,
  );
  assert.throws(
    () => g.setState('{"algorithm":"philox4x32-10","key":[0,0],"counter":[0,0,0,0],"used":5}'),
    /used/,
  );
});
