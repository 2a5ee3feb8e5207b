// `kinema generate --long streaming` on a copy of models/default with freshly initialised StreamingT2V adapters
// (zero-initialised: the test checks the plumbing, not quality): --frames above one window picks it, --anchor
// takes a PNG, and every bad request is a named error before any work with no output file.
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
import { readAnchorImage, readImageFile } from '../../src/cli/streaming_checks.js';
import { UNet3DConditionModel } from '../../src/models/unet3d/unet3d.js';
import { StreamingAdapters } from '../../src/models/streaming/streaming_unet.js';
import { DEFAULT_STREAMING_CONFIG } from '../../src/models/streaming/config.js';
import { ClipImageEncoder } from '../../src/models/clip/image_encoder.js';
import { writeStreamingAdapters } from '../../src/training/stages/cam_apm.js';
import { ParameterSubset } from '../../src/training/parameter_subset.js';
import { readAllFrames } from '../../src/io/video/index.js';
import { writeTinyClipFolder } from '../models/clip/tiny_clip.js';

const KINEMA = resolve(process.cwd(), 'bin/kinema.mjs');

async function modelWithAdapters(root: string): Promise<string> {
  const model = join(root, 'model');
  for (const c of ['model_index.json', 'scheduler', 'text_encoder', 'tokenizer', 'unet', 'vae'])
    cpSync(join('models/default', c), join(model, c), { recursive: true });
  const clip = join(root, 'clip');
  mkdirSync(clip);
  writeTinyClipFolder(clip);
  writeFileSync(
    join(clip, 'preprocessor_config.json'),
    JSON.stringify({
      size: { shortest_edge: 32 },
      crop_size: 32,
      image_mean: [0.5, 0.5, 0.5],
      image_std: [0.5, 0.5, 0.5],
    }),
  );
  const unet = await UNet3DConditionModel.fromPretrained(join(model, 'unet'));
  const encoder = await ClipImageEncoder.fromClipModel(clip);
  const config = { ...DEFAULT_STREAMING_CONFIG, imageEmbedDim: encoder.embedDim };
  const adapters = new StreamingAdapters(unet.config, config);
  writeStreamingAdapters(model, {
    clipDir: clip,
    encoder,
    config,
    module: new ParameterSubset(adapters, () => true),
    weights: adapters.initFrom(unet.stateDict),
    baseUnetWeights: readFileSync(join(model, 'unet', 'diffusion_pytorch_model.safetensors')),
  });
  return model;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isKinemaError(e), `not a KinemaError: ${String(e)}`);
    return e.code;
  }
  assert.fail('expected an error');
}

test('--long streaming: picked above one window, checks before any work, --anchor PNG, a streamed video', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-gen-streaming-'));
  try {
    const model = await modelWithAdapters(root);
    const out = join(root, 'out', 'v.mp4');
    mkdirSync(join(root, 'out'));
    const f = (over: Partial<GenerateCheckFlags>): GenerateCheckFlags => ({
      output: out,
      frames: 16,
      steps: 4,
      model,
      ...over,
    });
    assert.equal(planGenerate('a red circle', f({}), model).long, null, 'one window: no long video');
    const picked = planGenerate('a red circle', f({ frames: 40 }), model).long!;
    assert.deepEqual([picked.streaming?.implicit, picked.overlap, picked.plan.chunks], [true, 8, 4]);
    assert.equal(
      codeOf(() => planGenerate('a red circle', f({ frames: 40, long: 'streaming', overlap: 4 }), model)),
      'LONG_STREAMING_OVERLAP',
    );
    assert.equal(
      codeOf(() => planGenerate('a red circle', f({ frames: 40, long: 'naive', anchor: 'a.png' }), model)),
      'LONG_OPTION_FOR_OTHER_MODE',
    );
    assert.equal(
      codeOf(() =>
        planGenerate(
          'a red circle',
          f({ frames: 40, long: 'streaming', anchor: join(root, 'nope.png') }),
          model,
        ),
      ),
      'STREAMING_ANCHOR_BAD',
    );
    assert.equal(
      codeOf(() =>
        planGenerate('a red circle', f({ frames: 40, long: 'streaming', model: 'models/dsdn' }), model),
      ),
      'GENERATE_BAD_OPTION',
    );
    // Adapters of another base: refused by the fingerprint.
    const cfgPath = join(model, 'streaming', 'config.json');
    const cfg = readFileSync(cfgPath, 'utf8');
    writeFileSync(
      cfgPath,
      cfg.replace(/"base_unet_sha256": "[0-9a-f]+"/, `"base_unet_sha256": "${'0'.repeat(64)}"`),
    );
    assert.equal(
      codeOf(() => planGenerate('a red circle', f({ frames: 40 }), model)),
      'STREAMING_WRONG_BASE',
    );
    writeFileSync(cfgPath, cfg);
    // --anchor: a PNG of the video's size, else a named error.
    const small = join(root, 'small.png');
    const good = join(root, 'anchor.png');
    const px = (n: number) => Buffer.from(new Uint8Array(n * n * 3).map((_, i) => (i % 3 === 0 ? 230 : 40)));
    await sharp(px(32), { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(small);
    await sharp(px(64), { raw: { width: 64, height: 64, channels: 3 } })
      .png()
      .toFile(good);
    writeFileSync(join(root, 'junk.png'), 'not a png');
    const notes: string[] = [];
    const scaled = await readImageFile(small, 64, 64, '--anchor', 'STREAMING_ANCHOR_BAD', (l) =>
      notes.push(l),
    );
    assert.equal(scaled.length, 64 * 64 * 3, 'another size: scaled and centre-cropped');
    assert.match(notes.join(''), /is 32×32; scaled to cover 64×64 and centre-cropped/);
    await assert.rejects(
      readAnchorImage(join(root, 'junk.png'), 64, 64),
      (e: Error & { code?: string }) => e.code === 'STREAMING_ANCHOR_BAD',
    );
    assert.equal((await readAnchorImage(good, 64, 64))[0], 230);
    const r = spawnSync(
      process.execPath,
      [
        KINEMA,
        'generate',
        'a red circle moves right on a blue background',
        '--model',
        model,
        '--frames',
        '24',
        '--steps',
        '2',
        '--anchor',
        good,
        '--long',
        'streaming',
        '-o',
        out,
      ],
      { encoding: 'utf8', timeout: 300_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /chunk 2\/2: 2 steps/);
    const { frames } = await readAllFrames(out);
    assert.equal(frames.length, 24);
    const bad = spawnSync(
      process.execPath,
      [
        KINEMA,
        'generate',
        'a red circle',
        '--model',
        model,
        '--frames',
        '24',
        '--anchor',
        join(root, 'junk.png'),
        '--long',
        'streaming',
        '-o',
        join(root, 'out', 'w.mp4'),
      ],
      { encoding: 'utf8', timeout: 300_000 },
    );
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /\[STREAMING_ANCHOR_BAD\]/);
    assert.deepEqual(readdirSync(join(root, 'out')).sort(), ['v.mp4'], 'no partial file');
    assert.ok(existsSync(out));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
