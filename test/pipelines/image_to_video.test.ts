// Image-to-video on a tiny model the test makes: an untrained adapter gives exactly the text-to-video video;
// first-frame replacement ends with the image's own latents in frame 0; bad input is a named error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { hostTensor } from '../../src/engine/runtime.js';
import { CLIPTokenizer } from '../../src/models/clip/tokenizer.js';
import { CLIPTextModel } from '../../src/models/clip/text_model.js';
import { UNet3DConditionModel } from '../../src/models/unet3d/unet3d.js';
import { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import { loadScheduler } from '../../src/schedulers/index.js';
import { TextToVideoPipeline } from '../../src/pipelines/text_to_video.js';
import type { PipelineEvent } from '../../src/pipelines/text_to_video.js';
import { ImageAdapter, defaultImageAdapterConfig } from '../../src/models/i2v/image_adapter.js';
import { ClipImageEncoder } from '../../src/models/clip/image_encoder.js';
import { ImageAdapterBundle } from '../../src/pipelines/image_to_video.js';
import { toFloatFrames } from '../../src/pipelines/long_video/latent_frames.js';
import { writeTinyVisionFolder } from '../models/clip/tiny_clip.js';

const FIX = resolve(
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity'),
);
const RUN = {
  prompt: 'a red circle',
  numFrames: 3,
  height: 16,
  width: 16,
  seed: 3,
  guidanceScale: 5,
  numInferenceSteps: 3,
};

async function tinyPipeline(): Promise<TextToVideoPipeline> {
  const cfg = JSON.parse(readFileSync(join(FIX, 'unet3d', 'config.json'), 'utf8')) as Record<string, unknown>;
  const unet = UNet3DConditionModel.fromConfig(cfg);
  unet.initParameters(5);
  return new TextToVideoPipeline({
    tokenizer: await CLIPTokenizer.fromPretrained(join(FIX, 'tokenizer')),
    textEncoder: await CLIPTextModel.fromPretrained(join(FIX, 'text_encoder')),
    unet,
    vae: await AutoencoderKL.fromPretrained(join(FIX, 'vae')),
    scheduler: await loadScheduler(join(FIX, 'scheduler', 'ddim')),
  });
}

async function last(events: AsyncGenerator<PipelineEvent>) {
  let latents: Float32Array | null = null;
  let frames: Uint8Array[] = [];
  for await (const e of events) {
    if (e.kind === 'step') latents = (e.latents.data as Float32Array).slice();
    if (e.kind === 'done') frames = e.frames;
  }
  return { latents: latents!, frames };
}

test('image-to-video: untrained adapter = text-to-video; first-frame replacement pins frame 0 to the image', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-i2v-'));
  try {
    writeTinyVisionFolder(root);
    const encoder = await ClipImageEncoder.fromFolder(root);
    const pipe = await tinyPipeline();
    const unet = pipe.components.unet;
    const t = await encoder.tokens([new Uint8Array(16 * 16 * 3)], 16, 16);
    const adapter = new ImageAdapter(unet.config, defaultImageAdapterConfig(unet.config, t.width));
    const bundle = ImageAdapterBundle.untrained(unet, adapter, encoder);
    const image = new Uint8Array(16 * 16 * 3).map((_, i) => (i % 3 === 0 ? 220 : 30));
    const t2v = await last(pipe.generate(RUN));
    const i2v = await last(bundle.generate(pipe, { ...RUN, image, firstFrame: 'none' }));
    assert.deepEqual(i2v.frames, t2v.frames, 'zero-initialised adapter: the text-to-video video');
    const pinned = await last(bundle.generate(pipe, { ...RUN, image })); // default: replace
    const z = (await pipe.encodeVideo(hostTensor(toFloatFrames([image], 16, 16), [1, 3, 16, 16])))
      .data as Float32Array;
    const [c, f, plane] = [4, 3, 8 * 8];
    let m = 0;
    for (let ci = 0; ci < c; ci++)
      for (let k = 0; k < plane; k++)
        m = Math.max(m, Math.abs(pinned.latents[ci * f * plane + k]! - z[ci * plane + k]!));
    assert.ok(m < 1e-5, `frame 0 = the image's latents (|Δ| ${m})`);
    assert.notDeepEqual(
      pinned.frames.slice(1),
      t2v.frames.slice(1),
      'the other frames follow the pinned first frame',
    );
    await assert.rejects(
      last(bundle.generate(pipe, { ...RUN, image: image.subarray(3) })),
      (e: Error & { code?: string }) => e.code === 'I2V_BAD_IMAGE',
    );
    await assert.rejects(
      ImageAdapterBundle.load(root, unet),
      (e: Error & { code?: string }) => e.code === 'I2V_NO_ADAPTER',
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
