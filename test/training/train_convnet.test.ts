// A small conv net trained end to end through the engine: its loss falls on a fixed synthetic task, and a
// run killed half way resumes from its checkpoint onto the identical loss curve.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Tensor } from '../../src/engine/tensor.js';
import * as op from '../../src/engine/ops.js';
import { hostTensor } from '../../src/engine/runtime.js';
import { Generator } from '../../src/engine/random.js';
import { Module } from '../../src/nn/module.js';
import { Conv2d, GroupNorm, Linear } from '../../src/nn/layers.js';
import type { ConvNd } from '../../src/nn/layers.js';
import { GradStep, train } from '../../src/training/trainer.js';
import { cosineWithWarmup } from '../../src/training/lr_schedule.js';

class SmallConvNet extends Module {
  private readonly c1: ConvNd;
  private readonly norm: GroupNorm;
  private readonly c2: ConvNd;
  private readonly head: Linear;
  constructor() {
    super();
    this.c1 = this.child('conv1', Conv2d(1, 8, { kernel: 3, padding: 1 }));
    this.norm = this.child('norm', new GroupNorm(2, 8));
    this.c2 = this.child('conv2', Conv2d(8, 8, { kernel: 3, stride: 2, padding: 1 }));
    this.head = this.child('head', new Linear(8, 2));
  }
  forward(x: Tensor): Tensor {
    const h = op.silu(this.norm.forward(this.c1.forward(x)));
    const g = op.silu(this.c2.forward(h));
    return this.head.forward(op.mean(g, [2, 3]));
  }
}

const BATCH = 8;
/** Task: predict the mean brightness of the left and right halves of a random 8×8 image. */
function batchAt(step: number) {
  const rng = new Generator(1000 + step);
  const x = rng.uniform(BATCH * 64);
  const y = new Float32Array(BATCH * 2);
  for (let b = 0; b < BATCH; b++)
    for (let r = 0; r < 8; r++)
      for (let c = 0; c < 8; c++) y[b * 2 + (c < 4 ? 0 : 1)]! += x[b * 64 + r * 8 + c]! / 32;
  return { x: hostTensor(x, [BATCH, 1, 8, 8]), y: hostTensor(y, [BATCH, 2]) };
}

async function makeStep(model: SmallConvNet) {
  return GradStep.create(
    ({ x, y }) => {
      const d = op.sub(model.forward(x!), y!);
      return op.mean(op.mul(d, d), [0, 1]);
    },
    [
      { name: 'x', shape: [BATCH, 1, 8, 8] },
      { name: 'y', shape: [BATCH, 2] },
    ],
  );
}

test('a conv net trains (loss falls) and a killed run resumes on the identical loss curve', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-train-'));
  try {
    const model = new SmallConvNet();
    const step = await makeStep(model);
    const common = {
      model,
      step,
      batch: batchAt,
      totalSteps: 60,
      optimizer: { lr: 3e-3, weightDecay: 0.01 },
      lr: cosineWithWarmup({ lr: 3e-3, warmupSteps: 5, totalSteps: 60 }),
      clipNorm: 1.0,
      ema: { decay: 0.99 },
      seed: 3,
    };
    const full = await train(common);
    const first = full.losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = full.losses.slice(-5).reduce((a, b) => a + b) / 5;
    assert.ok(last < first * 0.3, `loss should fall: first ${first}, last ${last}`);

    // Killed at step 25 (stopped from the callback, as a crash after the checkpoint would leave it).
    const ckpt = join(dir, 'ckpt');
    const part1 = await train({
      ...common,
      checkpointDir: ckpt,
      checkpointEvery: 10,
      onStep: ({ step: s }) => s < 25,
    });
    assert.equal(part1.endStep, 25);
    const part2 = await train({ ...common, checkpointDir: ckpt, checkpointEvery: 10 });
    assert.equal(part2.startStep, 25);
    assert.deepEqual([...part1.losses, ...part2.losses], full.losses, 'resumed loss curve must be identical');
    for (const [k, v] of full.params) assert.deepEqual(part2.params.get(k), v, `param ${k} after resume`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
