// The full text-to-video-ms-1.7b UNet (1.41 B parameters) with cheap deterministic weights: one forward at a
// tiny spatial size must produce finite values of the right shape. Slow (~1.5 min on 2 cores, ~8 GB RAM):
// most of the time is writing the 5.6 GB of weights as ONNX external data and ONNX Runtime's session setup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UNet3DConditionModel } from '../../../src/models/unet3d/unet3d.js';
import { MODELSCOPE_T2V_1_7B_CONFIG } from '../../../src/models/unet3d/config.js';
import { Generator } from '../../../src/engine/random.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import { numel } from '../../../src/engine/ir.js';
import type { StateDict } from '../../../src/nn/module.js';

/** One array per distinct (shape, initializer), shared by every parameter that has it: ~100 arrays, not 1,480. */
function sharedInit(model: UNet3DConditionModel, seed: number): StateDict {
  const rng = new Generator(seed);
  const pool = new Map<string, Float32Array>();
  const sd: StateDict = new Map();
  for (const [name, spec] of model.namedParameters()) {
    const key = JSON.stringify([spec.shape, spec.init]);
    let v = pool.get(key);
    if (!v) {
      const n = numel(spec.shape);
      const init = spec.init;
      if (init.kind === 'zeros' || init.kind === 'ones')
        v = new Float32Array(n).fill(init.kind === 'ones' ? 1 : 0);
      else {
        const b = init.kind === 'uniform' ? init.bound : init.std;
        v = rng.uniform(n).map((u) => (u * 2 - 1) * b);
      }
      pool.set(key, v);
    }
    sd.set(name, v);
  }
  return sd;
}

test('text-to-video-ms-1.7b UNet: one forward (1×4×2×8×8, 77×1024 context) with random weights', async (t) => {
  const model = UNet3DConditionModel.fromConfig({ ...MODELSCOPE_T2V_1_7B_CONFIG });
  assert.equal(model.parameterCount(), 1_411_233_860);
  model.loadWeights(sharedInit(model, 0));
  const rng = new Generator(1);
  const started = Date.now();
  const out = await model.run(
    hostTensor(rng.normal(1 * 4 * 2 * 8 * 8), [1, 4, 2, 8, 8]),
    981,
    hostTensor(rng.normal(77 * 1024), [1, 77, 1024]),
  );
  t.diagnostic(`compile + forward: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.deepEqual(out.shape, [1, 4, 2, 8, 8]);
  const data = out.data as Float32Array;
  assert.ok(data.every(Number.isFinite), 'output must be finite');
  const rms = Math.sqrt(data.reduce((s, v) => s + v * v, 0) / data.length);
  t.diagnostic(`output rms ${rms.toFixed(4)}`);
  assert.ok(rms > 0, 'output must not be all zeros');
});
