import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Generator } from '../../src/engine/random.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { AdamW } from '../../src/training/adamw.js';
import { loadCheckpoint, loadLatestCheckpoint, saveCheckpoint } from '../../src/training/checkpoint.js';
import { EMA } from '../../src/training/ema.js';
import { cosineWithWarmup } from '../../src/training/lr_schedule.js';

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-ckpt-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface TrainState {
  step: number;
  params: Map<string, Float32Array>;
  optimizer: AdamW;
  ema: EMA;
  rng: Generator;
}

const schedule = cosineWithWarmup({ lr: 0.05, warmupSteps: 3, totalSteps: 12 });

function freshState(): TrainState {
  const rng = new Generator(2024);
  const params = new Map([
    ['layer.weight', rng.normal(12)],
    ['layer.bias', rng.normal(3)],
  ]);
  return {
    step: 0,
    params,
    optimizer: new AdamW({ lr: 0.05, weightDecay: 0.1 }),
    ema: new EMA(params, { decay: 0.99, warmup: true }),
    rng,
  };
}

/** A toy objective ½‖p − 1‖² with gradient noise drawn from the training RNG. */
function trainSteps(s: TrainState, count: number): void {
  for (let k = 0; k < count; k++) {
    const grads = new Map<string, Float32Array>();
    for (const [name, p] of s.params) {
      const noise = s.rng.normal(p.length);
      grads.set(
        name,
        Float32Array.from(p, (v, i) => v - 1 + 0.1 * noise[i]!),
      );
    }
    s.optimizer.step(s.params, grads, schedule(s.step));
    s.ema.update(s.params);
    s.step++;
  }
}

test('resuming from a checkpoint continues bit-exactly like an uninterrupted run', () => {
  withDir((dir) => {
    const straight = freshState();
    trainSteps(straight, 10);

    const first = freshState();
    trainSteps(first, 4);
    const path = saveCheckpoint(dir, {
      step: first.step,
      params: first.params,
      optimizer: first.optimizer,
      ema: first.ema,
      rngState: first.rng.getState(),
      extra: { epoch: 1, note: 'x' },
    });
    assert.equal(path, join(dir, 'ckpt-4.safetensors'));
    trainSteps(first, 1); // progress after the save must not leak into the checkpoint

    const loaded = loadLatestCheckpoint(dir)!;
    assert.equal(loaded.step, 4);
    assert.deepEqual(loaded.extra, { epoch: 1, note: 'x' });
    const rng = new Generator(0);
    rng.setState(loaded.rngState!);
    const resumed: TrainState = {
      step: loaded.step,
      params: loaded.params,
      optimizer: loaded.optimizer!,
      ema: loaded.ema!,
      rng,
    };
    // The caller's parameter order survives although safetensors stores keys sorted.
    assert.deepEqual([...loaded.params.keys()], ['layer.weight', 'layer.bias']);
    assert.deepEqual([...loaded.ema!.shadow.keys()], ['layer.weight', 'layer.bias']);
    assert.equal(resumed.optimizer.stepCount, 4);
    assert.equal(resumed.ema.optimizationStep, 4);
    assert.deepEqual(resumed.optimizer.hyperparameters, straight.optimizer.hyperparameters);
    trainSteps(resumed, 6);
    assert.deepEqual(resumed.params, straight.params);
    assert.deepEqual(resumed.optimizer.stateDict(), straight.optimizer.stateDict());
    assert.deepEqual(resumed.ema.stateDict(), straight.ema.stateDict());
    assert.equal(resumed.rng.getState(), straight.rng.getState());
  });
});

test('checkpoint file layout: prefixed tensors, metadata, latest.json', () => {
  withDir((dir) => {
    const s = freshState();
    trainSteps(s, 2);
    const path = saveCheckpoint(dir, { step: 2, params: s.params, optimizer: s.optimizer, ema: s.ema });
    const file = SafetensorsFile.open(path);
    try {
      assert.deepEqual(file.names().sort(), [
        'ema/layer.bias',
        'ema/layer.weight',
        'optim/exp_avg/layer.bias',
        'optim/exp_avg/layer.weight',
        'optim/exp_avg_sq/layer.bias',
        'optim/exp_avg_sq/layer.weight',
        'params/layer.bias',
        'params/layer.weight',
      ]);
      assert.deepEqual(file.info('params/layer.weight').shape, [12]);
      assert.equal(file.metadata.step, '2');
      assert.equal(file.metadata.format, 'kinema-checkpoint-v1');
      assert.deepEqual(JSON.parse(file.metadata.param_names!), ['layer.weight', 'layer.bias']);
      assert.deepEqual(JSON.parse(file.metadata.optimizer!), {
        step_count: 2,
        lr: 0.05,
        betas: [0.9, 0.999],
        eps: 1e-8,
        weight_decay: 0.1,
      });
      assert.deepEqual(JSON.parse(file.metadata.ema!), { decay: 0.99, warmup: true, optimization_step: 2 });
      assert.equal(file.metadata.rng_state, undefined);
    } finally {
      file.close();
    }
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'latest.json'), 'utf8')), {
      step: 2,
      file: 'ckpt-2.safetensors',
    });
    const params = loadCheckpoint(path);
    assert.equal(params.rngState, undefined);
    assert.equal(params.extra, undefined);
    assert.deepEqual(params.params, s.params);
    // Parameters only.
    const bare = loadCheckpoint(saveCheckpoint(dir, { step: 3, params: s.params }));
    assert.equal(bare.optimizer, undefined);
    assert.equal(bare.ema, undefined);
  });
});

test('keepLast prunes older checkpoints; no temp files are left', () => {
  withDir((dir) => {
    const params = new Map([['w', Float32Array.of(1, 2)]]);
    for (const step of [1, 2, 10, 20, 30]) saveCheckpoint(dir, { step, params }, { keepLast: 2 });
    assert.deepEqual(readdirSync(dir).sort(), ['ckpt-20.safetensors', 'ckpt-30.safetensors', 'latest.json']);
    // Saving an older step (e.g. after rolling back) keeps the file just written.
    saveCheckpoint(dir, { step: 5, params }, { keepLast: 1 });
    assert.deepEqual(readdirSync(dir).sort(), ['ckpt-30.safetensors', 'ckpt-5.safetensors', 'latest.json']);
    assert.equal(loadLatestCheckpoint(dir)!.step, 5);
    assert.throws(() => saveCheckpoint(dir, { step: 6, params }, { keepLast: 0 }), /keepLast/);
  });
});

test('missing or foreign checkpoints', () => {
  withDir((dir) => {
    assert.equal(loadLatestCheckpoint(dir), null);
    assert.equal(loadLatestCheckpoint(join(dir, 'does-not-exist')), null);
    const fixture = resolve(
      process.cwd(),
      '../shared/fixtures/parity/vae/diffusion_pytorch_model.safetensors',
    );
    assert.throws(() => loadCheckpoint(fixture), /not a Kinema checkpoint/);
    saveCheckpoint(dir, { step: 1, params: new Map([['w', Float32Array.of(1)]]) });
    rmSync(join(dir, 'ckpt-1.safetensors'));
    assert.throws(() => loadLatestCheckpoint(dir), /ckpt-1\.safetensors, which does not exist/);
    assert.throws(() => saveCheckpoint(dir, { step: -1, params: new Map() }), /step/);
  });
});
