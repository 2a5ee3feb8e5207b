// The vae-temporal stage on a tiny base VAE: only the temporal layers train (every base weight is exported
// unchanged), the frame-difference term matches a host computation, a stopped run resumes, and the export
// loads as a temporal-decoder VAE.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostTensor } from '../../../src/engine/runtime.js';
import { compileWithWeights } from '../../../src/nn/compile.js';
import { AutoencoderKL } from '../../../src/models/vae/autoencoder_kl.js';
import { loadStateDict, readConfig } from '../../../src/io/model_folder.js';
import { DEFAULT_VAE_CONFIG, exportVae } from '../../../src/training/stages/vae.js';
import {
  createVaeTemporalStage,
  flickerScores,
  temporalVaeFromBase,
  vaeTemporalLoss,
  worldClips,
} from '../../../src/training/stages/vae_temporal.js';
import type { StageOptions } from '../../../src/training/stages/common.js';

const CONFIG = {
  ...DEFAULT_VAE_CONFIG,
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  block_out_channels: [8, 16],
  norm_num_groups: 4,
  sample_size: 16,
  scaling_factor: 0.5,
};
const quiet = { write: () => true };

function basePipeline(root: string): string {
  const dir = join(root, 'base');
  mkdirSync(dir);
  const vae = AutoencoderKL.fromConfig(CONFIG);
  exportVae(dir, CONFIG, vae.initParameters(4));
  return dir;
}

test('flicker scores: a still decode of a moving reference has temporal error = the reference frame diff', () => {
  const per = 3 * 2 * 2;
  const original = new Float32Array(2 * per);
  original.fill(-1, 0, per);
  original.fill(1, per); // frame 0 black, frame 1 white: a frame difference of 1 everywhere
  const still = new Float32Array(2 * per).fill(0);
  const s = flickerScores(still, original, 1, 2, 2);
  assert.equal(s.frameDiff, 0);
  assert.equal(s.referenceFrameDiff, 1);
  assert.equal(s.temporalError, 1);
  assert.equal(flickerScores(original, original, 1, 2, 2).temporalError, 0);
});

test('vae-temporal: the frame-difference term matches a host computation', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-vt-'));
  try {
    const { temporal } = temporalVaeFromBase(basePipeline(root));
    const frames = 3;
    const images = worldClips(0, 'train', 0, 1, frames, 16);
    const latents = new Float32Array(frames * 4 * 8 * 8).map((_, i) => Math.sin(i));
    const fn = await compileWithWeights(
      (z, x) => vaeTemporalLoss(temporal, z, x, frames, 1),
      [
        { name: 'latents', shape: [frames, 4, 8, 8] },
        { name: 'images', shape: [frames, 3, 16, 16] },
      ],
      temporal.stateDict,
    );
    const out = await fn.exe.run({
      latents: hostTensor(latents, [frames, 4, 8, 8]),
      images: hostTensor(images, [frames, 3, 16, 16]),
    });
    const decoded = (await temporal.decode(hostTensor(latents, [frames, 4, 8, 8]), { numFrames: frames }))
      .data as Float32Array;
    const per = 3 * 16 * 16;
    let sum = 0;
    for (let f = 1; f < frames; f++)
      for (let k = 0; k < per; k++)
        sum += Math.abs(
          decoded[f * per + k]! -
            decoded[(f - 1) * per + k]! -
            (images[f * per + k]! - images[(f - 1) * per + k]!),
        );
    const want = sum / ((frames - 1) * per);
    const got = (out['temporal']!.data as Float32Array)[0]!;
    assert.ok(Math.abs(got - want) < 1e-4 * Math.max(1, want), `${got} vs ${want}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('vae-temporal stage: trains only the temporal layers, resumes, exports a temporal-decoder VAE', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-vt-'));
  try {
    const base = basePipeline(root);
    const stage = createVaeTemporalStage({ frames: 3, evalClips: 1 });
    const out = join(root, 'run');
    const opts: StageOptions = {
      out,
      steps: 4,
      batch: 1,
      lr: 1e-2,
      seed: 1,
      checkpointEvery: 2,
      log: quiet,
      base,
      exportDir: join(root, 'export'),
    };
    let n = 0;
    const first = await stage.run({ ...opts, shouldStop: () => ++n >= 2 });
    assert.equal(first.completed, false);
    assert.equal(first.step, 2);
    const done = await stage.run(opts);
    assert.equal(done.completed, true);
    assert.equal(done.losses.length, 4);
    const flicker = done.metrics['heldout_flicker'] as Record<string, { psnr: number }>;
    assert.ok(Number.isFinite(flicker['jittered_temporal']!.psnr));
    // The export: a temporal decoder whose base weights are the base VAE's, bit for bit (both fp16).
    const exported = join(root, 'export', 'vae');
    assert.equal(readConfig(exported)['temporal_decoder'], true);
    const got = loadStateDict(exported).stateDict;
    const want = loadStateDict(join(base, 'vae')).stateDict;
    for (const [k, v] of want) assert.deepEqual(got.get(k), v, `${k} is frozen`);
    const temporalKeys = [...got.keys()].filter((k) => k.includes('.temp_convs.'));
    assert.ok(temporalKeys.length > 0);
    const lastConv = got.get(temporalKeys.find((k) => k.endsWith('convs.11.weight'))!)!;
    assert.ok(
      lastConv.some((v) => v !== 0),
      'the zero-initialised last conv has trained',
    );
    await AutoencoderKL.fromPretrained(exported); // loads strictly
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
