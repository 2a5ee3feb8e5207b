// The UNet training recipe (`kinema train unet --config recipe.json`): fields map onto the stage's settings,
// errors name the JSON path, the committed recipes parse, the CLI refuses a flag that a recipe also sets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseUnetRecipe, readUnetRecipe } from '../../../src/training/stages/unet_recipe.js';
import { stageOptions } from '../../../src/cli/train.js';
import { unetStage } from '../../../src/training/stages/unet.js';
import { vaeStage } from '../../../src/training/stages/vae.js';

const full = {
  description: 'test',
  unet: { block_out_channels: [16, 32] },
  training: { steps: 12, batch: 4, lr: 0.001, seed: 7, warmup_steps: 3, ema_decay: 0.95 },
  objective: { prediction_type: 'v_prediction', motion_weight: 0.5 },
  schedule: { zero_terminal_snr: true, noise_shift: 8, timestep_shift: 3, terminal_share: 0.5 },
  noise: { frame_noise_shared: 0.2 },
  text: { train_text_encoder: true, probe: 0.1, probe_captions: 16, lr_scale: 10 },
  temporal: { positions: true, text_attention: true, text_lr_scale: 2 },
  data: { frames: 16, images: 0, caption_dropout: 0.05, ladder_rung: 1, contrast: true, offset: 40 },
};

test('recipe: every section maps onto the stage settings and the budget', () => {
  const r = parseUnetRecipe(full, 'r.json');
  assert.deepEqual(r.training, { steps: 12, batch: 4, lr: 0.001, seed: 7 });
  assert.deepEqual(r.unet, { block_out_channels: [16, 32] });
  assert.deepEqual(r.settings, {
    warmupSteps: 3,
    emaDecay: 0.95,
    predictionType: 'v_prediction',
    motionWeight: 0.5,
    zeroTerminalSnr: true,
    noiseShift: 8,
    timestepShift: 3,
    terminalShare: 0.5,
    frameNoiseShared: 0.2,
    trainTextEncoder: true,
    textProbe: 0.1,
    probeCaptions: 16,
    textLrScale: 10,
    temporalPositions: true,
    temporalTextAttention: true,
    temporalTextLrScale: 2,
    frames: 16,
    images: 0,
    captionDropout: 0.05,
    ladderRung: 1,
    contrast: true,
    dataOffset: 40,
  });
  assert.deepEqual(parseUnetRecipe({}, 'empty.json').settings, {});
});

test('recipe: unknown keys, wrong types and out-of-range values are refused naming the JSON path', () => {
  const cases: [unknown, RegExp][] = [
    [[], /must hold a JSON object/],
    [{ block_out_channels: [8] }, /unknown key 'block_out_channels'.*go under "unet"/],
    [
      { schedule: { noise_shfit: 2 } },
      /unknown key 'schedule\.noise_shfit' \(schedule has zero_terminal_snr/,
    ],
    [
      { schedule: { zero_terminal_snr: 'yes' } },
      /schedule\.zero_terminal_snr must be true or false, got "yes"/,
    ],
    [{ training: { steps: 1.5 } }, /training\.steps must be a non-negative integer, got 1\.5/],
    [{ training: { steps: 0 } }, /training\.steps must be at least 1/],
    [{ objective: { prediction_type: 'x0' } }, /objective\.prediction_type must be epsilon or v_prediction/],
    [{ schedule: { noise_shift: 0.5 } }, /schedule\.noise_shift must be a number ≥ 1, got 0\.5/],
    [{ schedule: { terminal_share: 1 } }, /schedule\.terminal_share must be in \[0, 1\), got 1/],
    [{ text: { probe: 0.1 } }, /a text probe needs .*text\.train_text_encoder/],
    [
      { objective: { prediction_type: 'epsilon' }, schedule: { zero_terminal_snr: true } },
      /schedule\.zero_terminal_snr needs v_prediction/,
    ],
    [{ data: { ladder_rung: 5 } }, /data\.ladder_rung must be 0–4, got 5/],
    [{ data: { contrast: true } }, /data\.contrast needs data\.ladder_rung/],
    [{ data: { ladder_rung: 0, track_centring: 0.5 } }, /data\.track_centring applies to world data/],
    [{ unet: [1] }, /unet must be an object/],
  ];
  for (const [value, want] of cases)
    assert.throws(
      () => parseUnetRecipe(value, 'bad.json'),
      (e: Error & { code?: string }) =>
        e.code === 'TRAIN_BAD_CONFIG' && /^--config bad\.json: /.test(e.message) && want.test(e.message),
      JSON.stringify(value),
    );
});

test('recipe: every committed recipe in configs/unet parses', () => {
  const dir = resolve('configs/unet');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  assert.ok(files.length >= 2, 'configs/unet holds the model card recipes');
  for (const f of files) {
    const r = readUnetRecipe(join(dir, f));
    assert.ok(r.description && r.description.length > 20, `${f} says what it is for`);
  }
});

test('kinema train unet --config: the recipe supplies budget and settings; a flag setting the same is refused', () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-recipe-'));
  try {
    const file = join(root, 'r.json');
    writeFileSync(file, JSON.stringify(full));
    const opts = stageOptions(unetStage, { config: file });
    assert.equal(opts.steps, 12);
    assert.equal(opts.batch, 4);
    assert.equal(opts.lr, 0.001);
    assert.equal(opts.seed, 7);
    assert.deepEqual(opts.configOverrides, { block_out_channels: [16, 32] });
    assert.equal(opts.unetSettings?.noiseShift, 8);
    assert.equal(opts.unetSettings?.ladderRung, 1);
    // Command-line budget wins over the recipe's.
    const o2 = stageOptions(unetStage, { config: file, steps: 3, seed: 0 });
    assert.equal(o2.steps, 3);
    assert.equal(o2.seed, 0);
    assert.throws(
      () => stageOptions(unetStage, { config: file, timestepShift: 2 }),
      /--timestep-shift and the --config recipe .* both set timestepShift; keep one \[?/,
    );
    // Without a recipe the seed still defaults to 0; the vae stage's --config keeps model keys.
    assert.equal(stageOptions(unetStage, {}).seed, 0);
    writeFileSync(join(root, 'v.json'), JSON.stringify({ latent_channels: 2 }));
    assert.deepEqual(stageOptions(vaeStage, { config: join(root, 'v.json') }).configOverrides, {
      latent_channels: 2,
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
