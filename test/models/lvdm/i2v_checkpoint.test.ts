// A whole VideoCrafter1 image-to-video checkpoint (scripts/fixtures/lvdm_i2v.py: the LatentVisualDiffusion key
// layout — UNet with to_k_ip/to_v_ip, first stage, OpenCLIP text, embedder.model.visual.*, the embedder's unused
// CLIP text parts, image_proj_model.*, DDPM buffers, scale_arr, EMA entries) with its YAML: every part loads
// strictly, the release's image conditioning (get_image_embeds, and the all-zero unconditional image) matches the
// reference on the loaded model, and an extra, missing or mis-described key is refused by name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { TorchCheckpoint } from '../../../src/io/torch_ckpt.js';
import type { TensorReader } from '../../../src/io/checkpoint_keys.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import {
  ldmScaleArr,
  loadLvdmCheckpoint,
  loadLvdmI2VCheckpoint,
  parseLvdmSettings,
  readLvdmConfigFile,
} from '../../../src/models/lvdm/checkpoint.js';
import { VIDEOCRAFTER1_I2V_512 } from '../../../src/models/lvdm/config.js';
import { VIDEOCRAFTER1_RESAMPLER } from '../../../src/models/lvdm/image_proj.js';
import {
  lvdmClipPixels,
  lvdmImageContext,
  lvdmImageEmbeds,
  lvdmUnconditionalImageEmbeds,
  rgbToLvdmImage,
} from '../../../src/models/lvdm/image_cond.js';
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD } from '../../../src/metrics/clip_metrics.js';
import { maxRelErr } from './compare.js';

const CKPT = resolve('test/fixtures/lvdm/whole_i2v.ckpt');
const YAML = resolve('test/fixtures/lvdm/whole_i2v.yaml');
const OPTS = { textHeads: 2, visionHeads: 2 };

/** The checkpoint as a reader with some keys dropped or added. */
function edited(ckpt: TorchCheckpoint, edit: { drop?: string[]; add?: string[] }): TensorReader {
  const keys = [...ckpt.keys().filter((k) => !edit.drop?.includes(k)), ...(edit.add ?? [])];
  return {
    path: 'edited.ckpt',
    keys: () => keys,
    info: (k) => (edit.add?.includes(k) ? { shape: [1] } : ckpt.info(k)),
    readFloat32: (k) => (edit.add?.includes(k) ? new Float32Array(1) : ckpt.readFloat32(k)),
  };
}

function io(): Record<string, { data: Float32Array; shape: number[] }> {
  const c = TorchCheckpoint.open(CKPT, { stateDictKey: 'io' });
  try {
    return Object.fromEntries(c.keys().map((k) => [k, { data: c.readFloat32(k), shape: c.info(k).shape }]));
  } finally {
    c.close();
  }
}

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return `${(e as { code: string }).code}: ${(e as Error).message}`;
  }
  return 'no error';
};

test('a whole I2V checkpoint loads strictly: UNet (to_k_ip/to_v_ip), VAE, text, visual tower, resampler, buffers', async (t) => {
  const settings = readLvdmConfigFile(YAML);
  assert.equal(settings.target, 'lvdm.models.ddpm3d.LatentVisualDiffusion');
  assert.equal(settings.image!.embedder, 'lvdm.modules.encoders.condition.FrozenOpenCLIPImageEmbedderV2');
  assert.deepEqual(settings.latentScale, { scaleA: 1, scaleB: 0.7, midStep: 400, fixScaleBug: false });
  const ckpt = TorchCheckpoint.open(CKPT);
  try {
    const loaded = loadLvdmI2VCheckpoint(ckpt, settings, OPTS);
    assert.equal(loaded.unet.config.useImageAttention, true);
    assert.ok(loaded.unet.stateDict.has('input_blocks.1.1.transformer_blocks.0.attn2.to_k_ip.weight'));
    assert.ok(loaded.unet.stateDict.has('output_blocks.1.1.transformer_blocks.0.attn2.to_v_ip.weight'));
    assert.equal(loaded.textEncoder!.config.numHiddenLayers, 2);
    const v = loaded.imageEncoder.config;
    assert.deepEqual([v.hiddenSize, v.numHiddenLayers, v.numAttentionHeads, v.imageSize], [32, 2, 2, 32]);
    assert.deepEqual(loaded.imageProj.config, settings.image!.resampler);
    // 2 EMA entries + the embedder's 6 CLIP text leftovers (token_embedding, positional_embedding, ln_final ×2,
    // text_projection, logit_scale)
    assert.equal(loaded.ignored, 8);
    assert.equal(loaded.checkedBuffers.length, 14, '12 schedule buffers + scale_factor + scale_arr');
    assert.ok(loaded.checkedBuffers.includes('scale_arr'));
    // the resampler is the file's own weights
    const key = 'layers.1.0.to_kv.weight';
    assert.deepEqual(loaded.imageProj.stateDict.get(key), ckpt.readFloat32(`image_proj_model.${key}`));

    // the release's image conditioning on the loaded model: a random image and the all-zero unconditional one
    const d = io();
    assert.deepEqual(d['images']!.shape, [2, 3, 32, 32]);
    const emb = await lvdmImageEmbeds(loaded, d['images']!.data, 2);
    assert.deepEqual(emb.shape, [2, 16, 24]);
    const err = maxRelErr(emb.data as Float32Array, d['img_emb']!.data);
    t.diagnostic(
      `get_image_embeds: max |Δ| ${err.abs.toExponential(2)}, relative ${err.rel.toExponential(2)}`,
    );
    assert.ok(err.abs <= 1e-4, `max |Δ| ${err.abs}`);
    const uncond = await lvdmUnconditionalImageEmbeds(loaded, 1);
    const refUncond = d['img_emb']!.data.subarray(16 * 24);
    const e2 = maxRelErr(uncond.data as Float32Array, refUncond);
    t.diagnostic(`unconditional (all-zero image): max |Δ| ${e2.abs.toExponential(2)}`);
    assert.ok(e2.abs <= 1e-4, `max |Δ| ${e2.abs}`);
  } finally {
    ckpt.close();
  }
});

test('I2V strictness: an extra, missing or mis-described key is a named error; the T2V path refuses the file', () => {
  const settings = readLvdmConfigFile(YAML);
  const ckpt = TorchCheckpoint.open(CKPT);
  try {
    const load = (r: TensorReader, s = settings): string => code(() => loadLvdmI2VCheckpoint(r, s, OPTS));
    assert.match(
      load(edited(ckpt, { add: ['image_proj_model.extra.weight'] })),
      /^CKPT_KEY_MISMATCH: .*image projection model.*unexpected keys: extra\.weight/,
    );
    assert.match(
      load(edited(ckpt, { add: ['embedder.model.visual.extra'] })),
      /^CKPT_KEY_MISMATCH: .*embedder\.model\.visual\.extra/,
    );
    assert.match(
      load(edited(ckpt, { add: ['embedder.other.weight'] })),
      /^CKPT_KEY_MISMATCH: edited\.ckpt: 1 keys are not part of a VideoCrafter image-to-video .*embedder\.other\.weight/,
    );
    assert.match(
      load(edited(ckpt, { drop: ['image_proj_model.layers.0.0.to_q.weight'] })),
      /^CKPT_KEY_MISMATCH: .*missing keys: layers\.0\.0\.to_q\.weight/,
    );
    assert.match(
      load(edited(ckpt, { drop: ['embedder.model.visual.ln_post.bias'] })),
      /^CKPT_KEY_MISMATCH: .*lacks embedder\.model\.visual\.ln_post\.bias/,
    );
    const noVisual = ckpt.keys().filter((k) => k.startsWith('embedder.model.visual.'));
    assert.match(
      load(edited(ckpt, { drop: noVisual })),
      /^CKPT_KEY_MISMATCH: .*no tensors under "embedder\.model\.visual\."/,
    );
    const ip = 'model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k_ip.weight';
    assert.match(
      load(edited(ckpt, { drop: [ip] })),
      /^STATE_DICT_MISMATCH: .*middle_block\.1\.transformer_blocks\.0\.attn2\.to_k_ip\.weight/,
    );
    assert.match(
      load(edited(ckpt, { drop: ['betas'] })),
      /^CKPT_KEY_MISMATCH: .*missing the DDPM buffer "betas"/,
    );
    // scale_arr is compared with the YAML's use_scale parameters
    assert.match(
      load(ckpt, { ...settings, latentScale: { ...settings.latentScale!, scaleB: 0.3 } }),
      /^CKPT_SCHEDULE_MISMATCH: .*"scale_arr"\[1\] .*scale_b 0\.3/,
    );
    assert.match(
      load(ckpt, { ...settings, latentScale: { ...settings.latentScale!, fixScaleBug: true } }),
      /^CKPT_SCHEDULE_MISMATCH: .*"scale_arr" has 1400 entries, the config's .* 1000/,
    );
    assert.match(
      load(ckpt, { ...settings, latentScale: undefined }),
      /^CKPT_SCHEDULE_MISMATCH: .*no model\.params\.use_scale/,
    );
    // the config must describe the parts
    assert.match(
      load(ckpt, { ...settings, image: undefined }),
      /^LVDM_CONFIG: .*describes no image conditioning/,
    );
    const wide = { ...settings.image!, resampler: { ...settings.image!.resampler, embeddingDim: 64 } };
    assert.match(
      load(ckpt, { ...settings, image: wide }),
      /^CKPT_KEY_MISMATCH: .*32 wide, the resampler's embedding_dim is 64/,
    );
    const out = { ...settings.image!, resampler: { ...settings.image!.resampler, outputDim: 16 } };
    assert.match(
      load(ckpt, { ...settings, image: out }),
      /^LVDM_CONFIG: .*output_dim 16 differs from unet_config\.params\.context_dim 24/,
    );
    // the text-to-video loader names what the file is
    assert.match(
      code(() => loadLvdmCheckpoint(ckpt, settings, { textHeads: 2 })),
      /^CKPT_KEY_MISMATCH: .*image-to-video \(LatentVisualDiffusion\) checkpoint .*loadLvdmI2VCheckpoint/,
    );
  } finally {
    ckpt.close();
  }
});

test('the I2V YAML: the release layout gives the release resampler; unsupported switches are named', () => {
  // configs/inference_i2v_512_v1.0.yaml's model.params (the keys Kinema reads)
  const release = {
    model: {
      target: 'lvdm.models.ddpm3d.LatentVisualDiffusion',
      params: {
        linear_start: 0.00085,
        linear_end: 0.012,
        timesteps: 1000,
        image_size: [40, 64],
        scale_factor: 0.18215,
        use_scale: true,
        scale_b: 0.7,
        finegrained: true,
        unet_config: { params: VIDEOCRAFTER1_I2V_512 },
        first_stage_config: { params: { embed_dim: 4, ddconfig: { ch: 128 } } },
        cond_stage_config: { params: { freeze: true, layer: 'penultimate' } },
        cond_img_config: {
          target: 'lvdm.modules.encoders.condition.FrozenOpenCLIPImageEmbedderV2',
          params: { freeze: true },
        },
      },
    },
  };
  const s = parseLvdmSettings(release);
  assert.deepEqual(s.image!.resampler, VIDEOCRAFTER1_RESAMPLER);
  assert.deepEqual(s.latentScale, { scaleA: 1, scaleB: 0.7, midStep: 400, fixScaleBug: false });
  assert.equal(s.unet['use_image_attention'], true);
  // the release's scale_arr: linspace(1, 0.7, 400) then 1000 × 0.7 (fix_scale_bug False)
  const arr = ldmScaleArr(s.latentScale!, 1000);
  assert.equal(arr.length, 1400);
  assert.equal(arr[0], 1);
  assert.ok(Math.abs(arr[1]! - (1 - 0.3 / 399)) < 1e-15 && arr[399] === 0.7 && arr[1399] === 0.7);
  assert.equal(ldmScaleArr({ ...s.latentScale!, fixScaleBug: true }, 1000).length, 1000);
  // a text-to-video YAML has no image part
  const t2v = parseLvdmSettings({
    model: {
      ...release.model,
      target: 'lvdm.models.ddpm3d.LatentDiffusion',
      params: { ...release.model.params, cond_img_config: undefined, use_scale: undefined },
    },
  });
  assert.equal(t2v.image, undefined);
  assert.equal(t2v.latentScale, undefined);

  const bad = (params: Record<string, unknown>, pattern: RegExp, target = release.model.target): void =>
    assert.throws(
      () => parseLvdmSettings({ model: { target, params: { ...release.model.params, ...params } } }),
      (e: Error & { code?: string }) => e.code === 'LVDM_CONFIG' && pattern.test(e.message),
    );
  bad({ finegrained: false }, /finegrained: false builds ImageProjModel/);
  bad({ finegrained: undefined }, /finegrained: false builds ImageProjModel/);
  bad({ cond_img_config: undefined }, /LatentVisualDiffusion needs model\.params\.cond_img_config/);
  bad(
    { cond_img_config: { target: 'lvdm.modules.encoders.condition.FrozenOpenCLIPImageEmbedder' } },
    /cond_img_config\.target .*only .*FrozenOpenCLIPImageEmbedderV2/,
  );
  bad(
    { cond_img_config: { target: 'x.FrozenOpenCLIPImageEmbedderV2', params: { layer: 'penultimate' } } },
    /raises NotImplementedError/,
  );
  bad(
    { image_proj_stage_config: { target: 'lvdm.modules.encoders.resampler.Resampler', params: {} } },
    /only lvdm\.modules\.encoders\.ip_resampler\.Resampler/,
  );
  bad(
    { image_proj_stage_config: { params: { video_length: 16 } } },
    /image_proj_stage_config\.params\.video_length: not a parameter/,
  );
  bad({ use_scale: 'yes' }, /use_scale must be true\/false/);
  bad({ mid_step: 0 }, /mid_step must be a positive integer/);

  // the fixture YAML round-trips through a file, the tiny resampler from its image_proj_stage_config
  const dir = mkdtempSync(join(tmpdir(), 'kinema-lvdm-i2v-'));
  try {
    const text = readFileSync(YAML, 'utf8');
    const path = join(dir, 'a.yaml');
    writeFileSync(path, text.replace('finegrained: true', 'finegrained: false'));
    assert.throws(() => readLvdmConfigFile(path), /finegrained: false/);
    assert.equal(readLvdmConfigFile(YAML).image!.resampler.heads, 3);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("image preprocessing is the release embedder's: [-1, 1] → (x + 1) / 2 → CLIP mean/std; context = text ‖ image", () => {
  // 8-bit RGB as load_image_batch reads it
  const rgb = new Uint8Array([0, 128, 255, 255, 0, 64]);
  const img = rgbToLvdmImage(rgb, 2, 1);
  assert.deepEqual(
    [...img],
    [
      -1,
      1,
      Math.fround((Math.fround(128 / 255) - 0.5) * 2),
      -1,
      1,
      Math.fround((Math.fround(64 / 255) - 0.5) * 2),
    ],
  );
  // the all-zero image is mid-grey before the normalisation
  const px = lvdmClipPixels(new Float32Array(3 * 4), 1, 2);
  for (let c = 0; c < 3; c++)
    assert.ok(Math.abs(px[c * 4]! - (0.5 - OPENAI_CLIP_MEAN[c]!) / OPENAI_CLIP_STD[c]!) < 1e-6);
  assert.throws(
    () => lvdmClipPixels(new Float32Array(3 * 9), 1, 2),
    (e: Error & { code?: string }) =>
      e.code === 'LVDM_BAD_INPUT' && /resize the image to 2×2 first/.test(e.message),
  );
  const text = hostTensor(
    Float32Array.from({ length: 2 * 77 * 2 }, (_, i) => i),
    [2, 77, 2],
  );
  const image = hostTensor(
    Float32Array.from({ length: 2 * 3 * 2 }, (_, i) => -1 - i),
    [2, 3, 2],
  );
  const ctx = lvdmImageContext(text, image);
  assert.deepEqual(ctx.shape, [2, 80, 2]);
  const c = ctx.data as Float32Array;
  assert.deepEqual([c[0], c[153], c[154], c[159], c[160], c[160 + 154]], [0, 153, -1, -6, 154, -7]);
  assert.throws(() => lvdmImageContext(image, text), /want text \[B, 77, D\]/);
});
