// UNet3D config parsing: fixture and ModelScope configs, defaults, and clear errors for bad configs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  MODELSCOPE_T2V_1_7B_CONFIG,
  UNet3DConfigError,
  parseUNet3DConfig,
} from '../../../src/models/unet3d/config.js';
import { UNet3DConditionModel } from '../../../src/models/unet3d/unet3d.js';
import { UNET_DIR } from './fixture.js';

const fixtureConfig = JSON.parse(readFileSync(join(UNET_DIR, 'config.json'), 'utf8')) as Record<
  string,
  unknown
>;

test('parses the fixture config.json (legacy attention_head_dim, fps_cond off by default)', () => {
  const c = parseUNet3DConfig(fixtureConfig);
  assert.deepEqual(c.blockOutChannels, [32, 64]);
  assert.deepEqual(c.downBlockTypes, ['CrossAttnDownBlock3D', 'DownBlock3D']);
  assert.deepEqual(c.upBlockTypes, ['UpBlock3D', 'CrossAttnUpBlock3D']);
  assert.equal(c.attentionHeadDim, 8);
  assert.equal(c.layersPerBlock, 1);
  assert.equal(c.normNumGroups, 8);
  assert.equal(c.crossAttentionDim, 32);
  assert.equal(c.sampleSize, 8);
  assert.equal(c.timeCondProjDim, null);
  assert.equal(c.fpsCond, false);
});

test('fixture attention layout: heads = channels / attention_head_dim; transformer_in 8 heads × 8', () => {
  const m = UNet3DConditionModel.fromConfig(fixtureConfig);
  const spatial = m.downBlocks[0]!.layers[0]!.attn!.blocks.at(0).attn1;
  assert.equal(spatial.heads, 4);
  assert.equal(spatial.dimHead, 8);
  const tin = m.transformerIn.blocks.at(0).attn1;
  assert.equal(tin.heads, 8);
  assert.equal(tin.dimHead, 8);
  assert.deepEqual(m.namedParameters().get('transformer_in.proj_in.weight')!.shape, [64, 32]);
});

test('missing keys take diffusers defaults (the text-to-video-ms-1.7b architecture)', () => {
  const dflt = parseUNet3DConfig({});
  const ms = parseUNet3DConfig({ ...MODELSCOPE_T2V_1_7B_CONFIG });
  assert.deepEqual({ ...dflt, sampleSize: 32 }, ms);
});

test('text-to-video-ms-1.7b UNet has 1,411.23 M parameters (exactly 1,411,233,860)', () => {
  const m = UNet3DConditionModel.fromConfig({ ...MODELSCOPE_T2V_1_7B_CONFIG });
  const n = m.parameterCount();
  assert.equal(n, 1_411_233_860);
  assert.equal((n / 1e6).toFixed(2), '1411.23');
  assert.deepEqual(
    m.namedParameters().get('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight')!.shape,
    [320, 1024],
  );
  assert.deepEqual(m.namedParameters().get('transformer_in.proj_in.weight')!.shape, [512, 320]);
});

test('fps_cond adds fps_embedding.linear_1/linear_2 (and only then)', () => {
  const base = UNet3DConditionModel.fromConfig(fixtureConfig);
  const fps = UNet3DConditionModel.fromConfig({ ...fixtureConfig, fps_cond: true });
  const p = fps.namedParameters();
  assert.deepEqual(p.get('fps_embedding.linear_1.weight')!.shape, [128, 32]);
  assert.deepEqual(p.get('fps_embedding.linear_2.weight')!.shape, [128, 128]);
  assert.equal(fps.parameterCount() - base.parameterCount(), 128 * 32 + 128 + 128 * 128 + 128);
  assert.equal(
    [...base.namedParameters().keys()].some((k) => k.startsWith('fps_embedding')),
    false,
  );
});

test('time_cond_proj_dim adds time_embedding.cond_proj (no bias)', () => {
  const m = UNet3DConditionModel.fromConfig({ ...fixtureConfig, time_cond_proj_dim: 16 });
  assert.deepEqual(m.namedParameters().get('time_embedding.cond_proj.weight')!.shape, [32, 16]);
  assert.equal(m.namedParameters().has('time_embedding.cond_proj.bias'), false);
});

test('bad configs give errors naming the key or block type', () => {
  const bad = (patch: Record<string, unknown>, re: RegExp): void => {
    assert.throws(
      () => parseUNet3DConfig({ ...fixtureConfig, ...patch }),
      (e: unknown) => e instanceof UNet3DConfigError && re.test(e.message),
    );
  };
  bad(
    { down_block_types: ['CrossAttnDownBlock3D', 'DownBlockMotion'] },
    /unknown down_block type "DownBlockMotion" at down_block_types\[1\]/,
  );
  bad(
    { up_block_types: ['UpBlock3D', 42] },
    /unknown up_block type 42 at up_block_types\[1\] \(supported: CrossAttnUpBlock3D, UpBlock3D\)/,
  );
  bad({ up_block_types: ['UpBlock3D'] }, /same length/);
  bad({ layers_per_block: '2' }, /'layers_per_block' must be an integer ≥ 1, got "2"/);
  bad(
    { block_out_channels: [32, -64] },
    /'block_out_channels' must be a non-empty array of positive integers/,
  );
  bad({ norm_num_groups: 5 }, /32 is not divisible by norm_num_groups 5/);
  bad({ norm_num_groups: null }, /norm_num_groups null is not supported/);
  bad({ num_attention_heads: 8 }, /num_attention_heads must be null/);
  bad({ attention_head_dim: [8, 8] }, /attention_head_dim must be a single integer/);
  bad({ act_fn: 'tanh' }, /'act_fn' must be one of silu, swish, gelu, relu, mish/);
  bad({ norm_eps: 0 }, /'norm_eps' must be a positive number/);
  bad({ fps_cond: 'yes' }, /'fps_cond' must be true or false/);
  bad({ _class_name: 'UNet2DConditionModel' }, /_class_name is "UNet2DConditionModel"/);
});
