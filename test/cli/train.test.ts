// `kinema train`: registered in the CLI with a help text listing the stages, bad options and unknown stages
// fail with clear messages, defaults come from the stage, and a tiny stage runs end to end from the flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CommanderError } from 'commander';
import {
  findStage,
  readConfigOverrides,
  stageOptions,
  trainCommand,
  TRAINING_STAGES,
} from '../../src/cli/train.js';
import { createVaeStage, DEFAULT_VAE_CONFIG } from '../../src/training/stages/vae.js';

function command(stages = TRAINING_STAGES) {
  const errors: string[] = [];
  const cmd = trainCommand(stages)
    .exitOverride()
    .configureOutput({ writeErr: (s) => errors.push(s), writeOut: () => undefined });
  return { cmd, errors };
}

test('kinema train --help lists the stages and the options', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', '--help'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  for (const s of ['clip', 'vae', '--steps', '--batch', '--lr', '--seed', '--threads', '--export', '--out'])
    assert.ok(r.stdout.includes(s), `help mentions ${s}:\n${r.stdout}`);
});

test('bad options and unknown stages are rejected with messages naming them', async () => {
  for (const [args, message] of [
    [['clip', '--steps', '0'], /--steps must be an integer ≥ 1, got '0'/],
    [['clip', '--batch', '2.5'], /--batch must be an integer ≥ 1, got '2.5'/],
    [['vae', '--lr', 'fast'], /--lr must be a positive number, got 'fast'/],
    [['vae', '--bogus'], /unknown option '--bogus'/],
    [[], /missing required argument 'stage'/],
  ] as const) {
    const { cmd, errors } = command();
    await assert.rejects(cmd.parseAsync([...args], { from: 'user' }), CommanderError);
    assert.match(errors.join(''), message);
  }
  const { cmd } = command();
  await assert.rejects(
    cmd.parseAsync(['unet3', '--steps', '1'], { from: 'user' }),
    /unknown training stage 'unet3' \(stages: clip, vae/,
  );
});

test('stage options take the stage defaults unless a flag overrides them', () => {
  const clip = findStage('clip');
  const o = stageOptions(clip, { seed: 3, batch: 8, export: 'models/x' });
  assert.equal(o.out, resolve('runs/clip'));
  assert.equal(o.steps, clip.defaults.steps);
  assert.equal(o.lr, clip.defaults.lr);
  assert.equal(o.batch, 8);
  assert.equal(o.seed, 3);
  assert.equal(o.exportDir, resolve('models/x'));
  assert.equal(o.threads, undefined);
  assert.equal(o.predictionType, undefined);
  const unet = findStage('unet');
  assert.equal(stageOptions(unet, { seed: 0, predictionType: 'epsilon' }).predictionType, 'epsilon');
  assert.throws(
    () => stageOptions(unet, { seed: 0, predictionType: 'x0' }),
    /--prediction-type must be epsilon or v_prediction, got 'x0'/,
  );
  assert.throws(
    () => stageOptions(clip, { seed: 0, predictionType: 'epsilon' }),
    /--prediction-type applies to the unet stage only, not 'clip'/,
  );
  assert.equal(stageOptions(unet, { seed: 0, trainTextEncoder: true }).trainTextEncoder, true);
  assert.equal(stageOptions(unet, { seed: 0 }).trainTextEncoder, undefined);
  assert.equal(stageOptions(unet, { seed: 0, trainTextEncoder: true, textProbe: 0.5 }).textProbe, 0.5);
  assert.equal(stageOptions(unet, { seed: 0, trainTextEncoder: true }).textProbe, undefined);
  assert.throws(
    () => stageOptions(unet, { seed: 0, textProbe: 0.5 }),
    /--text-probe needs --train-text-encoder/,
  );
  assert.equal(stageOptions(unet, { seed: 0, trainTextEncoder: true, textLrScale: 5 }).textLrScale, 5);
  assert.throws(
    () => stageOptions(unet, { seed: 0, textLrScale: 5 }),
    /--text-lr-scale needs --train-text-encoder/,
  );
  assert.throws(
    () => stageOptions(clip, { seed: 0, textProbe: 0.5 }),
    /--text-probe applies to the unet stage only, not 'clip'/,
  );
  assert.throws(
    () => stageOptions(clip, { seed: 0, trainTextEncoder: true }),
    /--train-text-encoder applies to the unet stage only, not 'clip'/,
  );
  assert.equal(stageOptions(unet, { seed: 0, frames: 16 }).frames, 16);
  assert.equal(stageOptions(unet, { seed: 0, temporalPositions: true }).temporalPositions, true);
  assert.equal(stageOptions(unet, { seed: 0 }).temporalPositions, undefined);
  assert.equal(stageOptions(unet, { seed: 0, temporalTextAttention: true }).temporalTextAttention, true);
  assert.equal(stageOptions(unet, { seed: 0 }).temporalTextAttention, undefined);
  assert.throws(
    () => stageOptions(clip, { seed: 0, temporalTextAttention: true }),
    /--temporal-text-attention applies to the unet stage only, not 'clip'/,
  );
  assert.equal(stageOptions(unet, { seed: 0, temporalTextLrScale: 10 }).temporalTextLrScale, 10);
  assert.throws(
    () => stageOptions(clip, { seed: 0, temporalTextLrScale: 10 }),
    /--temporal-text-lr-scale applies to the unet stage only, not 'clip'/,
  );
  assert.equal(stageOptions(unet, { seed: 0, frameNoiseShared: 0.5 }).frameNoiseShared, 0.5);
  assert.equal(stageOptions(unet, { seed: 0 }).frameNoiseShared, undefined);
  assert.equal(stageOptions(unet, { seed: 0, zeroTerminalSnr: true }).zeroTerminalSnr, true);
  assert.equal(stageOptions(unet, { seed: 0 }).zeroTerminalSnr, undefined);
  assert.throws(
    () => stageOptions(clip, { seed: 0, zeroTerminalSnr: true }),
    /--zero-terminal-snr applies to the unet stage only, not 'clip'/,
  );
  assert.throws(
    () => stageOptions(clip, { seed: 0, frameNoiseShared: 0.5 }),
    /--frame-noise-shared applies to the unet stage only, not 'clip'/,
  );
  assert.equal(stageOptions(unet, { seed: 0, motionWeight: 5 }).motionWeight, 5);
  assert.equal(stageOptions(unet, { seed: 0 }).motionWeight, undefined);
  assert.throws(
    () => stageOptions(clip, { seed: 0, motionWeight: 5 }),
    /--motion-weight applies to the unet stage only, not 'clip'/,
  );
  assert.equal(stageOptions(unet, { seed: 0, trackCentring: 0.25 }).trackCentring, 0.25);
  assert.equal(stageOptions(unet, { seed: 0 }).trackCentring, undefined);
  assert.equal(stageOptions(unet, { seed: 0, timestepShift: 3 }).timestepShift, 3);
  assert.throws(
    () => stageOptions(clip, { seed: 0, timestepShift: 3 }),
    /--timestep-shift applies to the unet stage only, not 'clip'/,
  );
  assert.throws(
    () => stageOptions(clip, { seed: 0, trackCentring: 0.25 }),
    /--track-centring applies to the unet stage only, not 'clip'/,
  );
  assert.throws(
    () => stageOptions(clip, { seed: 0, frames: 16 }),
    /--frames applies to the unet stage only, not 'clip'/,
  );
  assert.throws(
    () => stageOptions(clip, { seed: 0, temporalPositions: true }),
    /--temporal-positions applies to the unet stage only, not 'clip'/,
  );
  assert.equal(
    stageOptions(clip, { seed: 0, init: 'runs/a/ckpt-1.safetensors' }).init,
    resolve('runs/a/ckpt-1.safetensors'),
  );
});

test('--config: vae stage: a JSON object of config keys; unet stage: a recipe (model keys under "unet")', () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-train-config-'));
  try {
    const file = (name: string, text: string): string => {
      writeFileSync(join(root, name), text);
      return join(root, name);
    };
    const good = file('good.json', '{"latent_channels": 8, "block_out_channels": [32, 64, 64, 64]}');
    assert.deepEqual(stageOptions(findStage('vae'), { seed: 0, config: good }).configOverrides, {
      latent_channels: 8,
      block_out_channels: [32, 64, 64, 64],
    });
    assert.equal(stageOptions(findStage('unet'), { seed: 0 }).configOverrides, undefined);
    assert.throws(
      () => stageOptions(findStage('unet'), { seed: 0, config: good }),
      /unknown key 'latent_channels' .*go under "unet"/,
    );
    const recipe = file('recipe.json', '{"unet": {"block_out_channels": [16, 32]}}');
    assert.deepEqual(stageOptions(findStage('unet'), { config: recipe }).configOverrides, {
      block_out_channels: [16, 32],
    });
    assert.throws(
      () => readConfigOverrides(findStage('clip'), good),
      /--config applies to the vae and unet stages, not 'clip'/,
    );
    assert.throws(
      () => readConfigOverrides(findStage('vae'), file('bad.json', '{"latent_channels": ')),
      /--config: .*bad\.json is not valid JSON/,
    );
    assert.throws(
      () => readConfigOverrides(findStage('vae'), file('list.json', '[1, 2]')),
      /--config: .*list\.json must hold a JSON object of config keys/,
    );
    assert.throws(
      () => readConfigOverrides(findStage('vae'), join(root, 'missing.json')),
      /--config: cannot read .*missing\.json/,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a tiny stage runs from the command line flags and writes its outputs', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-train-cli-'));
  try {
    const tiny = createVaeStage({
      config: {
        ...DEFAULT_VAE_CONFIG,
        down_block_types: ['DownEncoderBlock2D'],
        up_block_types: ['UpDecoderBlock2D'],
        block_out_channels: [4],
        norm_num_groups: 2,
        sample_size: 8,
      },
      evalFrames: 2,
    });
    const { cmd } = command([tiny]);
    const out = join(root, 'run');
    await cmd.parseAsync(
      ['vae', '--steps', '3', '--batch', '2', '--out', out, '--export', join(root, 'pipe'), '--threads', '1'],
      {
        from: 'user',
      },
    );
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
    assert.equal(metrics.steps, 3);
    assert.equal(metrics.batch, 2);
    assert.ok(existsSync(join(out, 'loss.png')));
    assert.ok(existsSync(join(out, 'checkpoints', 'latest.json')));
    assert.ok(existsSync(join(root, 'pipe', 'vae', 'diffusion_pytorch_model.safetensors')));

    // --stop-after: checkpoint and stop after n steps of this invocation; running again resumes.
    const staged = join(root, 'staged');
    const flags = ['vae', '--steps', '3', '--batch', '2', '--out', staged, '--threads', '1'];
    await command([tiny]).cmd.parseAsync([...flags, '--stop-after', '2'], { from: 'user' });
    assert.equal(JSON.parse(readFileSync(join(staged, 'checkpoints', 'latest.json'), 'utf8')).step, 2);
    assert.equal(JSON.parse(readFileSync(join(staged, 'metrics.json'), 'utf8')).steps, 2);
    assert.equal(process.exitCode ?? 0, 0, '--stop-after is not an interruption');
    await command([tiny]).cmd.parseAsync(flags, { from: 'user' });
    assert.equal(JSON.parse(readFileSync(join(staged, 'metrics.json'), 'utf8')).steps, 3);

    // --config lays model config keys over the stage's default: here 2 latent channels instead of 4.
    const cfg = join(root, 'vae2.json');
    writeFileSync(cfg, JSON.stringify({ latent_channels: 2 }));
    await command([tiny]).cmd.parseAsync(
      [
        'vae',
        '--steps',
        '2',
        '--batch',
        '2',
        '--out',
        join(root, 'c2'),
        '--export',
        join(root, 'pipe2'),
      ].concat(['--threads', '1', '--config', cfg]),
      { from: 'user' },
    );
    const exported = JSON.parse(readFileSync(join(root, 'pipe2', 'vae', 'config.json'), 'utf8'));
    assert.equal(exported.latent_channels, 2);
    assert.deepEqual(exported.block_out_channels, [4]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
