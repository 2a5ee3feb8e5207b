// The released StreamingT2V checkpoint layout (a tiny torch.save Lightning file made by
// scripts/fixtures/streaming_release.py with the release's key names) loads through the safe .ckpt reader onto
// Kinema's base UNet3D and adapters, strictly: every value lands under the right name, the APM's per-layer
// parameters on the right layer, and a missing or extra key is a named error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TorchCheckpoint } from '../../../src/io/torch_ckpt.js';
import type { TensorReader } from '../../../src/io/checkpoint_keys.js';
import { UNet3DConditionModel } from '../../../src/models/unet3d/unet3d.js';
import { apmKeyMap, loadStreamingRelease } from '../../../src/models/streaming/release_checkpoint.js';
import { RELEASE_FIXTURE_CONFIG, RELEASE_FIXTURE_UNET } from './release_fixture.js';

const DIR = 'test/fixtures/streaming';
const expected = JSON.parse(readFileSync(`${DIR}/expected.json`, 'utf8')) as {
  apm_paths: string[];
  tensors: Record<string, { sum: number; shape: number[] }>;
};
const config = UNet3DConditionModel.fromConfig(RELEASE_FIXTURE_UNET).config;
const sum = (a: Float32Array): number => a.reduce((s, v) => s + v, 0);
const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-3 * Math.max(1, Math.abs(b));

/** The checkpoint with keys dropped or added (to test strictness without more fixture files). */
function edited(reader: TensorReader, drop: (k: string) => boolean, extra: string[] = []): TensorReader {
  const keys = [...reader.keys().filter((k) => !drop(k)), ...extra];
  const base = reader.keys()[0]!;
  return {
    path: reader.path,
    keys: () => keys,
    info: (k) => reader.info(extra.includes(k) ? base : k),
    readFloat32: (k) => reader.readFloat32(extra.includes(k) ? base : k),
  };
}

test('streaming_t2v.ckpt layout: unet.* → CAM, base_model.* → UNet + mergers + per-layer APM, resampler.*', () => {
  const ckpt = TorchCheckpoint.open(`${DIR}/streaming_t2v_tiny.ckpt`);
  try {
    assert.deepEqual([...apmKeyMap(new UNet3DConditionModel(config)).keys()], expected.apm_paths);
    const r = loadStreamingRelease(ckpt, config, RELEASE_FIXTURE_CONFIG, { imageEncoderHeads: 2 });
    assert.equal(r.imageEncoder?.config.projectionDim, 6);
    assert.equal(r.imageEncoder?.config.numHiddenLayers, 1);
    assert.ok(r.textEncoder?.stateDict.has('text_model.final_layer_norm.weight'));
    assert.ok(r.vae?.stateDict.has('post_quant_conv.weight'));
    const check = (release: string, got: Float32Array | undefined): void => {
      assert.ok(got, `${release} was mapped`);
      assert.ok(close(sum(got), expected.tensors[release]!.sum), `${release}: sum ${sum(got)}`);
    };
    // proj is stored [width, output]; visual_projection.weight is its transpose (same sum).
    check('image_encoder.model.visual.proj', r.imageEncoder?.stateDict.get('visual_projection.weight'));
    check(
      'unet.controlnet_cond_embedding.conv_out.weight',
      r.adapterWeights.get('cam.controlnet_cond_embedding.conv_out.weight'),
    );
    check(
      'unet.down_blocks.0.attentions.0.proj_in.weight',
      r.adapterWeights.get('cam.down_blocks.0.attentions.0.proj_in.weight'),
    );
    check(
      'base_model.cross_attention_merger_down_blocks.3.temporal_transformer.proj_out.weight',
      r.adapterWeights.get('cross_attention_merger_down_blocks.3.temporal_transformer.proj_out.weight'),
    );
    expected.apm_paths.forEach((path, l) => {
      check(`base_model.${path}.attn2.alpha`, r.adapterWeights.get(`apm_layers.${l}.alpha`));
      check(`base_model.${path}.attn2.conv.weight`, r.adapterWeights.get(`apm_layers.${l}.conv.weight`));
    });
    check(
      'resampler.context_embedding.2.weight',
      r.adapterWeights.get('resampler.context_embedding.2.weight'),
    );
    check(
      'base_model.up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k.weight',
      r.unet.stateDict.get('up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k.weight'),
    );
    // Every tensor of the file went somewhere, and every parameter came from the file.
    const visual = Object.keys(expected.tensors).filter((k) => k.startsWith('image_encoder.')).length;
    assert.equal(
      r.unet.stateDict.size + r.adapterWeights.size + 2 + visual,
      Object.keys(expected.tensors).length,
    );
    // Strictness: a merger key missing, or a key of no StreamingT2V part, is a named error.
    const merger = 'base_model.cross_attention_merger_mid_block.temporal_transformer.norm.weight';
    assert.throws(
      () =>
        loadStreamingRelease(
          edited(ckpt, (k) => k === merger),
          config,
          RELEASE_FIXTURE_CONFIG,
          { imageEncoderHeads: 2 },
        ),
      /missing keys: cross_attention_merger_mid_block\.temporal_transformer\.norm\.weight/,
    );
    assert.throws(
      () =>
        loadStreamingRelease(
          edited(ckpt, () => false, ['model_ema.decay']),
          config,
          RELEASE_FIXTURE_CONFIG,
          { imageEncoderHeads: 2 },
        ),
      (e: Error & { code?: string }) => e.code === 'CKPT_KEY_MISMATCH' && /model_ema\.decay/.test(e.message),
    );
  } finally {
    ckpt.close();
  }
});
