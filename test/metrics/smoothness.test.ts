import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowSmoothnessAccumulator, flowSmoothness } from '../../src/metrics/smoothness.js';
import { panVideo } from './synthetic.js';

test('accumulator: per-pixel temporal std (n − 1) of |flow|, averaged over pixels', () => {
  const acc = new FlowSmoothnessAccumulator(2);
  // Pixel 0 magnitudes 5, 5, 5 (std 0); pixel 1 magnitudes 1, 2, 3 (std 1). Mean of stds = 0.5.
  const flows = [
    [3, 4, 1, 0],
    [4, 3, 0, 2],
    [0, 5, 3, 0],
  ].map(([u0, v0, u1, v1]) => ({ u: Float32Array.from([u0!, u1!]), v: Float32Array.from([v0!, v1!]) }));
  assert.deepEqual(acc.result(), { smoothness: null, meanMagnitudeStd: null, pairs: 0 });
  for (const f of flows) acc.push(f);
  const r = acc.result();
  assert.equal(r.pairs, 3);
  assert.ok(Math.abs(r.smoothness! - 0.5) < 1e-12, `smoothness ${r.smoothness}`);
  // Per-pair mean magnitudes 3, 3.5, 4 -> sample std 0.5.
  assert.ok(Math.abs(r.meanMagnitudeStd! - 0.5) < 1e-12);
  assert.throws(() => acc.push({ u: new Float32Array(3), v: new Float32Array(3) }), /expected 2/);
});

test('smoothness is near zero for constant motion and much larger for jerky motion', async () => {
  const steady: [number, number][] = Array.from({ length: 7 }, (_, t) => [1.5 * t, 0.5 * t]);
  let x = 0;
  const jerky: [number, number][] = Array.from({ length: 7 }, (_, t) => {
    if (t > 0) x += t % 2 === 1 ? 0.25 : 2.75; // same mean speed, alternating slow/fast
    return [x, x / 3];
  });
  const opts = { size: null } as const;
  const a = await flowSmoothness(panVideo(64, 48, steady, 9), 64, 48, opts);
  const b = await flowSmoothness(panVideo(64, 48, jerky, 9), 64, 48, opts);
  assert.equal(a.pairs, 6);
  assert.ok(a.smoothness! < 0.1, `steady ${a.smoothness}`);
  assert.ok(b.smoothness! > 4 * a.smoothness!, `steady ${a.smoothness}, jerky ${b.smoothness}`);
  assert.ok(b.smoothness! > 1, `jerky ${b.smoothness}`);
  assert.ok(b.meanMagnitudeStd! > 1 && a.meanMagnitudeStd! < 0.1);
});

test('smoothness needs at least 2 flow pairs', async () => {
  const r = await flowSmoothness(
    panVideo(32, 32, [
      [0, 0],
      [1, 0],
    ]),
    32,
    32,
    { size: null },
  );
  assert.equal(r.smoothness, null);
  assert.equal(r.pairs, 1);
});
