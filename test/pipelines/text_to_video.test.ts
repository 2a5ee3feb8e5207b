// The whole text-to-video pipeline against diffusers' TextToVideoSDPipeline on the tiny parity checkpoint:
// prompt embeddings, the latents after every scheduler step, and the final frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { hostTensor } from '../../src/engine/runtime.js';
import { CLIPTokenizer } from '../../src/models/clip/tokenizer.js';
import { CLIPTextModel } from '../../src/models/clip/text_model.js';
import { UNet3DConditionModel } from '../../src/models/unet3d/unet3d.js';
import { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import { loadScheduler } from '../../src/schedulers/index.js';
import { TextToVideoPipeline } from '../../src/pipelines/text_to_video.js';
import type { PipelineEvent } from '../../src/pipelines/text_to_video.js';
import { assertClose } from '../engine/check_op.js';

const FIX = resolve(
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity'),
);

async function components() {
  return {
    tokenizer: await CLIPTokenizer.fromPretrained(join(FIX, 'tokenizer')),
    textEncoder: await CLIPTextModel.fromPretrained(join(FIX, 'text_encoder')),
    unet: await UNet3DConditionModel.fromPretrained(join(FIX, 'unet3d')),
    vae: await AutoencoderKL.fromPretrained(join(FIX, 'vae')),
    scheduler: await loadScheduler(join(FIX, 'scheduler', 'ddim')),
  };
}

for (const size of ['32x32', '64x64']) {
  test(`text-to-video pipeline matches the reference (${size})`, async () => {
    const io = SafetensorsFile.open(join(FIX, 'pipeline', `io_${size}.safetensors`));
    const init = io.readFloat32('latents_init');
    const pipe = new TextToVideoPipeline(await components());
    const events: PipelineEvent[] = [];
    for await (const e of pipe.generate({
      prompt: 'a red circle moving left',
      negativePrompt: '',
      guidanceScale: 9.0,
      numInferenceSteps: 4,
      latents: hostTensor(init, io.info('latents_init').shape),
      eta: 0,
    })) {
      events.push(e);
    }
    const encoded = events.find((e) => e.kind === 'encoded');
    assert.ok(encoded && encoded.kind === 'encoded');
    assertClose(
      encoded.promptEmbeds.data as Float32Array,
      io.readFloat32('prompt_embeds'),
      1e-4,
      'prompt_embeds',
    );
    assertClose(
      encoded.negativePromptEmbeds.data as Float32Array,
      io.readFloat32('negative_prompt_embeds'),
      1e-4,
      'negative_prompt_embeds',
    );
    const steps = events.filter((e) => e.kind === 'step');
    const ref = io.readFloat32('latents_per_step');
    const per = init.length;
    assert.deepEqual(
      steps.map((s) => (s.kind === 'step' ? s.timestep : -1)),
      [...(io.read('timesteps') as BigInt64Array)].map(Number),
    );
    steps.forEach((s, i) => {
      if (s.kind !== 'step') return;
      const err = assertClose(
        s.latents.data as Float32Array,
        ref.subarray(i * per, (i + 1) * per),
        1e-4,
        `latents after step ${i}`,
      );
      assert.ok(err < 1e-4);
    });
    const done = events.at(-1);
    assert.ok(done && done.kind === 'done');
    const frames = io.readFloat32('frames');
    let worst = 0;
    for (let i = 0; i < frames.length; i++)
      worst = Math.max(worst, Math.abs(done.framesFloat[i]! - frames[i]!));
    assert.ok(worst <= 1e-4, `frames max abs diff ${worst}`);
    io.close();
  });
}

test('η > 0 (stochastic DDIM): the step noise comes from the seed, after the starting latents', async () => {
  const pipe = new TextToVideoPipeline(await components());
  const last = async (eta: number, seed: number): Promise<Float32Array> => {
    let out: Float32Array | null = null;
    const opts = { prompt: 'a red circle', numFrames: 3, height: 32, width: 32, numInferenceSteps: 3 };
    for await (const e of pipe.generate({ ...opts, eta, seed }))
      if (e.kind === 'step') out = e.latents.data as Float32Array;
    assert.ok(out);
    return out;
  };
  const gap = (a: Float32Array, b: Float32Array): number =>
    a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  const a = await last(1, 5);
  assert.equal(gap(a, await last(1, 5)), 0, 'the same seed gives the same video');
  assert.ok(gap(a, await last(0, 5)) > 1e-3, 'η = 1 adds noise that η = 0 does not');
  assert.ok(gap(a, await last(1, 6)) > 1e-3, 'another seed, other noise');
  assert.ok(a.every(Number.isFinite));
});

test('encodeVideo: posterior means × scaling factor in the UNet layout, undone by decodeLatents', async () => {
  const pipe = new TextToVideoPipeline(await components());
  const { vae } = pipe.components;
  const frames = 3;
  const data = Float32Array.from({ length: frames * 3 * 32 * 32 }, (_, i) => Math.sin(i * 0.37));
  const video = hostTensor(data, [frames, 3, 32, 32]);
  const latents = await pipe.encodeVideo(video);
  const { mean } = await vae.encode(video);
  const [, c, h, w] = mean.shape as [number, number, number, number];
  assert.deepEqual(latents.shape, [1, c, frames, h, w]);
  const m = mean.data as Float32Array;
  const l = latents.data as Float32Array;
  for (let f = 0; f < frames; f++)
    for (let ch = 0; ch < c; ch++)
      for (let k = 0; k < h * w; k++)
        assert.equal(
          l[(ch * frames + f) * h * w + k],
          Math.fround(m[(f * c + ch) * h * w + k]! * vae.config.scalingFactor),
        );
  // decodeLatents divides the factor back out and decodes each frame as the VAE does.
  const viaPipeline = (await pipe.decodeLatents(latents)).data as Float32Array;
  const direct = (await vae.decode(mean, { numFrames: frames })).data as Float32Array;
  const per = 3 * 32 * 32;
  let worst = 0;
  for (let f = 0; f < frames; f++)
    for (let ch = 0; ch < 3; ch++)
      for (let k = 0; k < 32 * 32; k++)
        worst = Math.max(
          worst,
          Math.abs(viaPipeline[(ch * frames + f) * 32 * 32 + k]! - direct[f * per + ch * 32 * 32 + k]!),
        );
  assert.ok(worst < 1e-5, `decodeLatents(encodeVideo(x)) = decode(encode(x).mean): ${worst}`);
  await assert.rejects(pipe.encodeVideo(hostTensor(data, [frames * 3, 32, 32])), /\[F, 3, H, W\]/);
});
