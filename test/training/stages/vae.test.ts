// The VAE stage on a tiny configuration: the loss terms equal a host computation from the model's own
// posterior and reconstruction, the stage lowers its loss and resumes a killed run on the identical curve,
// the export carries the measured scaling_factor and decodes like the trained float32 weights (within fp16).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostTensor } from '../../../src/engine/runtime.js';
import { Generator } from '../../../src/engine/random.js';
import { AutoencoderKL } from '../../../src/models/vae/autoencoder_kl.js';
import { loadLatestCheckpoint } from '../../../src/training/checkpoint.js';
import { train } from '../../../src/training/trainer.js';
import {
  DEFAULT_VAE_CONFIG,
  createVaeStage,
  imageMse,
  psnrFromMse,
  vaeGradStep,
  worldFrames,
} from '../../../src/training/stages/vae.js';
import type { StageOptions } from '../../../src/training/stages/common.js';

const CONFIG = {
  ...DEFAULT_VAE_CONFIG,
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  block_out_channels: [8, 16],
  norm_num_groups: 4,
  sample_size: 16,
};
const SETTINGS = { config: CONFIG, evalFrames: 8, warmupSteps: 2 };
const quiet = { write: () => true };

function options(out: string, extra: Partial<StageOptions> = {}): StageOptions {
  return { out, steps: 24, batch: 8, lr: 1e-2, seed: 2, checkpointEvery: 4, log: quiet, ...extra };
}

test('PSNR: an MSE of 0.01 on [0, 1] pixels is 20 dB; reconstructions are clamped to the pixel range', () => {
  assert.equal(psnrFromMse(0.01), 20);
  assert.equal(psnrFromMse(0), Infinity);
  // reference −1 (= 0) against −0.8 (= 0.1): MSE 0.01; 3 (clamped to 1) against 1: 0.
  assert.ok(Math.abs(imageMse(new Float32Array([-1, 1]), new Float32Array([-0.8, 3])) - 0.005) < 1e-9);
  assert.throws(() => imageMse(new Float32Array(2), new Float32Array(3)), /sizes differ/);
});

test('the VAE loss terms match the posterior and reconstruction computed by the inference programs', async () => {
  const vae = AutoencoderKL.fromConfig(CONFIG);
  const params = vae.initParameters(3);
  vae.loadWeights(params);
  const n = 2;
  const images = worldFrames(0, 'train', [0, 1], [false, true], [0.5, 0], { size: 16, videoFrames: 16 });
  const noise = new Generator(5).normal(n * 4 * 8 * 8);
  const step = await vaeGradStep(vae, n, 0.5);
  const out = await step.run(params, {
    images: hostTensor(images, [n, 3, 16, 16]),
    noise: hostTensor(noise, [n, 4, 8, 8]),
  });
  const post = await vae.encode(hostTensor(images, [n, 3, 16, 16]));
  const mean = post.mean.data as Float32Array;
  const logvar = post.logvar.data as Float32Array;
  const std = post.std.data as Float32Array;
  let kl = 0;
  const z = new Float32Array(mean.length);
  for (let i = 0; i < mean.length; i++) {
    kl += 0.5 * (mean[i]! ** 2 + Math.exp(logvar[i]!) - 1 - logvar[i]!);
    z[i] = mean[i]! + std[i]! * noise[i]!;
  }
  kl /= n;
  const recon = (await vae.decode(hostTensor(z, [n, 4, 8, 8]))).data as Float32Array;
  let l1 = 0;
  let mse = 0;
  recon.forEach((v, i) => {
    l1 += Math.abs(v - images[i]!);
    mse += (v - images[i]!) ** 2;
  });
  l1 /= recon.length;
  mse /= recon.length;
  const aux = (k: string) => (out.aux[k]!.data as Float32Array)[0]!;
  assert.ok(Math.abs(aux('kl') - kl) < 1e-3 * Math.max(1, kl), `kl ${aux('kl')} vs ${kl}`);
  assert.ok(Math.abs(aux('l1') - l1) < 1e-5, `l1 ${aux('l1')} vs ${l1}`);
  assert.ok(Math.abs(aux('mse') - mse) < 1e-5, `mse ${aux('mse')} vs ${mse}`);
  assert.ok(Math.abs(out.loss - (l1 + mse + 0.5 * kl)) < 1e-3 * Math.max(1, out.loss));
  assert.ok(out.grads.size === params.size, 'every parameter gets a gradient');
  const fixed = { images: hostTensor(images, [n, 3, 16, 16]), noise: hostTensor(noise, [n, 4, 8, 8]) };
  const run = await train({
    model: vae,
    step,
    batch: () => fixed,
    totalSteps: 40,
    optimizer: { lr: 1e-2 },
    seed: 3,
  });
  assert.ok(
    run.losses.at(-1)! < 0.5 * run.losses[0]!,
    `a fixed batch is learned: ${run.losses[0]} → ${run.losses.at(-1)}`,
  );
});

test('vae stage: the loss falls, a killed run resumes on the identical curve, the export round-trips', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-vae-stage-'));
  try {
    const stage = createVaeStage(SETTINGS);
    const full = await stage.run(options(join(root, 'full'), { exportDir: join(root, 'pipe') }));
    assert.equal(full.completed, true);
    // World frames differ a lot from batch to batch: compare the means of the first and last 6 steps.
    const head = full.losses.slice(0, 6).reduce((a, v) => a + v) / 6;
    const tail = full.losses.slice(-6).reduce((a, v) => a + v) / 6;
    assert.ok(tail < 0.9 * head, `loss should fall: first ${head}, last ${tail}`);

    let steps = 0;
    const killed = await stage.run(options(join(root, 'resumed'), { shouldStop: () => ++steps === 10 }));
    assert.equal(killed.step, 10);
    assert.deepEqual(killed.exported, []);
    const resumed = await stage.run(options(join(root, 'resumed')));
    assert.deepEqual(resumed.losses, full.losses, 'resumed loss curve must be identical');

    const metrics = JSON.parse(readFileSync(join(root, 'full', 'metrics.json'), 'utf8'));
    const config = JSON.parse(readFileSync(join(root, 'pipe', 'vae', 'config.json'), 'utf8'));
    assert.equal(config.scaling_factor, Number((1 / metrics.latent_std).toPrecision(6)));
    assert.ok(metrics.heldout_psnr_db > 5 && metrics.heldout_psnr_db < 60, `PSNR ${metrics.heldout_psnr_db}`);

    // Exported fp16 weights decode like the trained float32 (EMA) weights.
    const exported = await AutoencoderKL.fromPretrained(join(root, 'pipe', 'vae'));
    assert.equal(exported.config.scalingFactor, config.scaling_factor);
    const reference = AutoencoderKL.fromConfig(CONFIG);
    reference.loadWeights(loadLatestCheckpoint(join(root, 'full', 'checkpoints'))!.ema!.stateDict());
    const latents = hostTensor(new Generator(7).normal(2 * 4 * 8 * 8), [2, 4, 8, 8]);
    const a = (await exported.decode(latents)).data as Float32Array;
    const b = (await reference.decode(latents)).data as Float32Array;
    let worst = 0;
    a.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b[i]!))));
    assert.ok(worst < 1e-2 && worst > 0, `fp16 export differs from float32 by ${worst}`);
    // Only the unet stage starts from a pipeline folder; the others name the checkpoint --init wants.
    await assert.rejects(
      stage.run(options(join(root, 'from-folder'), { init: join(root, 'pipe') })),
      /--init: .*pipe is a folder; the vae stage starts from a checkpoint file/,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
