// `kinema generate --image FILE.png` on a copy of models/default with a freshly initialised image adapter
// (zero-initialised: plumbing, not quality): a video of the asked length, and named errors before any work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { isKinemaError } from '../../src/errors.js';
import { planGenerate } from '../../src/cli/generate_checks.js';
import type { GenerateCheckFlags } from '../../src/cli/generate_checks.js';
import { UNet3DConditionModel } from '../../src/models/unet3d/unet3d.js';
import {
  ImageAdapter,
  defaultImageAdapterConfig,
  imageAdapterConfigJson,
} from '../../src/models/i2v/image_adapter.js';
import { baseFingerprint } from '../../src/models/streaming/config.js';
import { exportComponent } from '../../src/training/export.js';
import { readAllFrames } from '../../src/io/video/index.js';
import { worldSample } from '../../src/training/data/world.js';

const KINEMA = resolve(process.cwd(), 'bin/kinema.mjs');

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isKinemaError(e), `not a KinemaError: ${String(e)}`);
    return e.code;
  }
  assert.fail('expected an error');
}

test('--image: checks before any work, then an image-to-video run', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-gen-i2v-'));
  try {
    const model = join(root, 'model');
    for (const c of [
      'model_index.json',
      'scheduler',
      'text_encoder',
      'tokenizer',
      'unet',
      'vae',
      'image_encoder',
    ])
      cpSync(join('models/default', c), join(model, c), { recursive: true });
    const out = join(root, 'out');
    mkdirSync(out);
    const f = (over: Partial<GenerateCheckFlags>): GenerateCheckFlags => ({
      output: join(out, 'v.mp4'),
      frames: 8,
      steps: 2,
      model,
      ...over,
    });
    const png = join(root, 'in.png');
    const small = join(root, 'small.png');
    const px = (n: number) => Buffer.from(new Uint8Array(n * n * 3).map((_, i) => (i % 3 === 1 ? 200 : 50)));
    await sharp(px(64), { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toFile(png);
    await sharp(px(32), { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(small);
    assert.equal(
      codeOf(() => planGenerate('a red circle', f({ image: png }), model)),
      'I2V_NO_ADAPTER',
    );
    const unet = await UNet3DConditionModel.fromPretrained(join(model, 'unet'));
    const config = defaultImageAdapterConfig(unet.config, 64);
    const adapter = new ImageAdapter(unet.config, config);
    const sha = baseFingerprint(readFileSync(join(model, 'unet', 'diffusion_pytorch_model.safetensors')));
    exportComponent(join(model, 'image_adapter'), {
      config: { ...imageAdapterConfigJson(config), base_unet_sha256: sha },
      stateDict: adapter.initParameters(1),
      module: adapter,
      weightsBasename: 'diffusion_pytorch_model',
    });
    assert.equal(planGenerate('a red circle', f({ image: png }), model).long, null);
    assert.equal(
      codeOf(() => planGenerate('a red circle', f({ imageScale: 2 }), model)),
      'GENERATE_BAD_OPTION',
    );
    // --image with --long: the image's window starts the video, the mode continues it.
    assert.equal(
      planGenerate('a red circle', f({ image: png, long: 'naive', frames: 32 }), model).long?.plan.chunks,
      3,
    );
    assert.equal(
      codeOf(() => planGenerate('a red circle', f({ image: join(root, 'nope.png') }), model)),
      'I2V_BAD_IMAGE',
    );
    assert.equal(
      codeOf(() => planGenerate('a red circle', f({ image: png, model: 'models/dsdn' }), model)),
      'GENERATE_BAD_OPTION',
    );
    const run = (args: string[]) =>
      spawnSync(
        process.execPath,
        [
          KINEMA,
          'generate',
          'a red circle moves right on a blue background',
          '--model',
          model,
          '--frames',
          '8',
          '--steps',
          '2',
          ...args,
        ],
        { encoding: 'utf8', timeout: 300_000 },
      );
    writeFileSync(join(root, 'junk.png'), 'not an image');
    const bad = run(['--image', join(root, 'junk.png'), '-o', join(out, 'bad.mp4')]);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /not a readable image.*\[I2V_BAD_IMAGE\]/);
    const ok = run(['--image', small, '--first-frame', 'replace', '-o', join(out, 'v.mp4')]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stderr, /--image .* is 32×32; scaled to cover 64×64 and centre-cropped/);
    const { frames } = await readAllFrames(join(out, 'v.mp4'));
    assert.equal(frames.length, 8);
    assert.deepEqual(readdirSync(out), ['v.mp4'], 'no partial file from the refused run');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

// The shipped-model tests: a held-out world scene's first frame as the input image, the CLI as users run it.
async function worldImage(
  root: string,
  index: number,
): Promise<{ caption: string; first: Uint8Array; png: string }> {
  const s = worldSample(7, index, { width: 64, height: 64, frames: 16, split: 'heldout' });
  const png = join(root, `first${index}.png`);
  await sharp(Buffer.from(s.frames[0]!), { raw: { width: 64, height: 64, channels: 3 } })
    .png()
    .toFile(png);
  return { caption: s.caption, first: s.frames[0]!, png };
}

async function generateFrames(
  out: string,
  args: string[],
): Promise<{ stderr: string; frames: Uint8Array[] }> {
  const r = spawnSync(process.execPath, [KINEMA, 'generate', ...args, '-o', out], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return { stderr: r.stderr, frames: (await readAllFrames(out)).frames };
}

/** Mean absolute difference over all bytes of two equally long frame lists. */
function mad(a: readonly Uint8Array[], b: readonly Uint8Array[]): number {
  let [sum, n] = [0, 0];
  for (let f = 0; f < a.length; f++)
    for (let i = 0; i < a[f]!.length; i++) [sum, n] = [sum + Math.abs(a[f]![i]! - b[f]![i]!), n + 1];
  return sum / n;
}

const SHIPPED_I2V = existsSync('models/default/image_adapter/config.json');

test('kinema generate --image on the shipped default model: the first frame within 25 levels of the input', async (t) => {
  if (!SHIPPED_I2V) return t.skip('models/default has no image_adapter/');
  const root = mkdtempSync(join(tmpdir(), 'kinema-gen-i2v-default-'));
  try {
    const w = await worldImage(root, 3);
    const { frames } = await generateFrames(join(root, 'v.mp4'), [
      w.caption,
      '--image',
      w.png,
      '--frames',
      '8',
      '--steps',
      '10',
    ]);
    assert.equal(frames.length, 8);
    const d = mad([frames[0]!], [w.first]);
    assert.ok(d <= 25, `frame 0 is ${d.toFixed(1)} levels from the input (mean absolute difference)`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('kinema generate --image --frames 24 on the shipped model: StreamingT2V continues the image window', async (t) => {
  if (!SHIPPED_I2V || !existsSync('models/default/streaming'))
    return t.skip('models/default has no image_adapter/ or streaming/');
  const root = mkdtempSync(join(tmpdir(), 'kinema-gen-i2v-long-'));
  try {
    const w = await worldImage(root, 5);
    const { stderr, frames } = await generateFrames(join(root, 'v.mp4'), [
      w.caption,
      '--image',
      w.png,
      '--frames',
      '24',
      '--steps',
      '6',
    ]);
    assert.match(stderr, /--long streaming/);
    assert.equal(frames.length, 24);
    const d = mad([frames[0]!], [w.first]);
    assert.ok(d <= 25, `frame 0 is ${d.toFixed(1)} levels from the input (mean absolute difference)`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('kinema generate --image --lora on the shipped model: the LoRA acts on the image-to-video UNet (scale 0 = none)', async (t) => {
  if (!SHIPPED_I2V || !existsSync('models/default/lora'))
    return t.skip('models/default has no image_adapter/ or lora/');
  const root = mkdtempSync(join(tmpdir(), 'kinema-gen-i2v-lora-'));
  try {
    const w = await worldImage(root, 3);
    const lora = 'models/default/lora/striped.safetensors';
    const video = async (name: string, extra: string[]) =>
      (
        await generateFrames(join(root, name), [
          w.caption,
          '--image',
          w.png,
          '--frames',
          '8',
          '--steps',
          '4',
          ...extra,
        ])
      ).frames;
    const none = await video('none.mp4', []);
    assert.equal(
      mad(none, await video('zero.mp4', ['--lora', `${lora}:0`])),
      0,
      'scale 0 is the base exactly',
    );
    const on = mad(none, await video('on.mp4', ['--lora', `${lora}:0.8`]));
    assert.ok(on > 0.5, `the LoRA changes the video (mean absolute difference ${on.toFixed(2)})`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
