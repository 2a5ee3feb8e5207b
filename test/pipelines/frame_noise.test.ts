// Kinema's UNet3D config key frame_noise_shared: parsed and checked, and the pipeline's starting latents follow it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Generator } from '../../src/engine/random.js';
import { CLIPTokenizer } from '../../src/models/clip/tokenizer.js';
import { CLIPTextModel } from '../../src/models/clip/text_model.js';
import { UNet3DConditionModel } from '../../src/models/unet3d/unet3d.js';
import { parseUNet3DConfig } from '../../src/models/unet3d/config.js';
import { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import { loadScheduler } from '../../src/schedulers/index.js';
import { TextToVideoPipeline } from '../../src/pipelines/text_to_video.js';

const FIX = resolve(
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity'),
);
const UNET_CONFIG = JSON.parse(readFileSync(join(FIX, 'unet3d', 'config.json'), 'utf8')) as Record<
  string,
  unknown
>;

test('frame_noise_shared config: parsed, default 0, bad values name the key', () => {
  assert.equal(parseUNet3DConfig(UNET_CONFIG).frameNoiseShared, 0);
  assert.equal(parseUNet3DConfig({ ...UNET_CONFIG, frame_noise_shared: null }).frameNoiseShared, 0);
  assert.equal(parseUNet3DConfig({ ...UNET_CONFIG, frame_noise_shared: 0.5 }).frameNoiseShared, 0.5);
  for (const bad of [1, -0.5, '0.5'])
    assert.throws(
      () => parseUNet3DConfig({ ...UNET_CONFIG, frame_noise_shared: bad }),
      /'frame_noise_shared' must be a number in \[0, 1\), got/,
    );
});

async function pipelineWith(rho: number | undefined): Promise<TextToVideoPipeline> {
  return new TextToVideoPipeline({
    tokenizer: await CLIPTokenizer.fromPretrained(join(FIX, 'tokenizer')),
    textEncoder: await CLIPTextModel.fromPretrained(join(FIX, 'text_encoder')),
    unet: UNet3DConditionModel.fromConfig({
      ...UNET_CONFIG,
      ...(rho !== undefined && { frame_noise_shared: rho }),
    }),
    vae: await AutoencoderKL.fromPretrained(join(FIX, 'vae')),
    scheduler: await loadScheduler(join(FIX, 'scheduler', 'ddim')),
  });
}

test('the pipeline starts from frame-correlated noise when the UNet was trained on it', async () => {
  const opts = { prompt: 'a red circle', numFrames: 5, height: 32, width: 32, seed: 7 };
  const plain = await pipelineWith(undefined);
  const f = plain.components.vae.scaleFactor;
  const c = plain.components.unet.config.inChannels;
  const [h, w] = [32 / f, 32 / f];
  const hw = h * w;
  const gen = new Generator(7);
  const own = gen.normal(c * 5 * hw);
  const shared = gen.normal(c * hw);
  const latents = plain.prepareLatents(opts);
  assert.deepEqual(latents.shape, [1, c, 5, h, w]);
  assert.deepEqual(latents.data, own, 'independent frames: the seeded normal draws as they come');
  const mixed = (await pipelineWith(0.25)).prepareLatents(opts).data as Float32Array;
  for (let ci = 0; ci < c; ci++)
    for (let fi = 0; fi < 5; fi++)
      for (let k = 0; k < hw; k++) {
        const i = (ci * 5 + fi) * hw + k;
        const want = 0.5 * shared[ci * hw + k]! + Math.sqrt(0.75) * own[i]!;
        assert.ok(Math.abs(mixed[i]! - want) < 1e-6, `element ${i}: ${mixed[i]} vs ${want}`);
      }
});
