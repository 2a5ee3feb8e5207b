// The shipped DSDN model (models/dsdn) loads strictly and generates; its base components are models/default's
// byte for byte (the card says it adapts that model, frozen), and its trained parts change the video.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { DualStreamPipeline } from '../../src/pipelines/dual_stream.js';
import type { DualStreamOptions } from '../../src/pipelines/dual_stream.js';

const DIR = 'models/dsdn';
const SKIP = existsSync(`${DIR}/model_index.json`) ? false : `${DIR} is not shipped in this checkout`;

async function video(pipe: DualStreamPipeline, o: Partial<DualStreamOptions> = {}): Promise<Float32Array> {
  const opts = {
    prompt: 'a red circle moves right on a blue background',
    numFrames: 8,
    width: 64,
    height: 64,
  };
  for await (const e of pipe.generate({ ...opts, numInferenceSteps: 4, seed: 0, ...o }))
    if (e.kind === 'done') return e.framesFloat;
  throw new Error('no frames');
}

const meanAbs = (a: Float32Array, b: Float32Array): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
};

test(
  'models/dsdn: base components are models/default, it loads strictly and its trained parts act',
  { skip: SKIP },
  async () => {
    for (const f of [
      'unet/diffusion_pytorch_model.safetensors',
      'text_encoder/model.safetensors',
      'vae/diffusion_pytorch_model.safetensors',
    ])
      assert.ok(
        readFileSync(`${DIR}/${f}`).equals(readFileSync(`models/default/${f}`)),
        `${f} is models/default's`,
      );
    const pipe = await DualStreamPipeline.fromPretrained(DIR);
    const dual = await video(pipe);
    assert.equal(dual.length, 8 * 64 * 64 * 3);
    let lo = 1;
    let hi = 0;
    for (const v of dual) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    assert.ok(hi - lo > 0.3, `not a blank video (range ${lo}…${hi})`);
    assert.ok(
      meanAbs(dual, await video(pipe, { motionScale: 0 })) > 1e-3,
      'the motion increment unit changes the video',
    );
    assert.ok(
      meanAbs(dual, await video(pipe, { interaction: false })) > 1e-3,
      'the interaction blocks change the video',
    );
  },
);
