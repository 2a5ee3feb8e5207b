// AutoencoderKL configuration and loading errors: each names the problem (key, block type, file, shapes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AutoencoderKL } from '../../../src/models/vae/autoencoder_kl.js';
import { VaeConfigError } from '../../../src/models/vae/config.js';
import { StateDictError } from '../../../src/nn/module.js';
import { ModelLoadError } from '../../../src/io/model_folder.js';
import { hostTensor } from '../../../src/engine/runtime.js';
import { VAE_DIR, vaeConfigJson, withTempDir } from './vae_fixture.js';

const WEIGHTS = 'diffusion_pytorch_model.safetensors';

/** A model folder with the fixture weights and a modified config. */
async function withFolder(
  config: Record<string, unknown>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    copyFileSync(join(VAE_DIR, WEIGHTS), join(dir, WEIGHTS));
    await fn(dir);
  });
}

test('unknown block types are rejected by name', () => {
  const cfg = vaeConfigJson();
  const down = [...(cfg['down_block_types'] as string[])];
  down[1] = 'CrossAttnDownBlock2D';
  assert.throws(
    () => AutoencoderKL.fromConfig({ ...cfg, down_block_types: down }),
    (e: unknown) => e instanceof VaeConfigError && /'CrossAttnDownBlock2D'.*down_block_types/.test(e.message),
  );
  const up = [...(cfg['up_block_types'] as string[])];
  up[0] = 'AttnUpDecoderBlock2D';
  assert.throws(
    () => AutoencoderKL.fromConfig({ ...cfg, up_block_types: up }),
    /'AttnUpDecoderBlock2D'.*up_block_types/,
  );
});

test('inconsistent or mistyped config values are rejected naming the key', () => {
  const cfg = vaeConfigJson();
  const channels = cfg['block_out_channels'] as number[];
  assert.throws(
    () => AutoencoderKL.fromConfig({ ...cfg, down_block_types: ['DownEncoderBlock2D'] }),
    /down_block_types has 1 entries but block_out_channels has 2/,
  );
  assert.throws(
    () => AutoencoderKL.fromConfig({ ...cfg, norm_num_groups: 3 }),
    new RegExp(`block_out_channels entry ${channels[0]} is not divisible by norm_num_groups 3`),
  );
  assert.throws(
    () => AutoencoderKL.fromConfig({ ...cfg, layers_per_block: 'two' }),
    /'layers_per_block' must be/,
  );
  assert.throws(() => AutoencoderKL.fromConfig({ ...cfg, act_fn: 'softsign' }), /'act_fn' must be one of/);
  assert.throws(
    () => AutoencoderKL.fromConfig({ ...cfg, _class_name: 'UNet2DModel' }),
    /_class_name is 'UNet2DModel'/,
  );
  assert.throws(
    () => AutoencoderKL.fromConfig({ ...cfg, latents_mean: [0, 1] }),
    /latents_mean has 2 entries/,
  );
});

test('a config that disagrees with the weights names the key and both shapes', async () => {
  const cfg = vaeConfigJson();
  const latent = cfg['latent_channels'] as number;
  const top = (cfg['block_out_channels'] as number[]).at(-1)!;
  await withFolder({ ...cfg, latent_channels: 2 * latent }, async (dir) => {
    await assert.rejects(AutoencoderKL.fromPretrained(dir), (e: unknown) => {
      assert.ok(e instanceof StateDictError);
      assert.match(e.message, /decoder\.conv_in\.weight/);
      assert.ok(e.message.includes(`checkpoint has [${top},${latent},3,3]`), e.message);
      assert.ok(e.message.includes(`model expects [${top},${2 * latent},3,3]`), e.message);
      return true;
    });
  });
  const layers = cfg['layers_per_block'] as number;
  await withFolder({ ...cfg, layers_per_block: layers + 1 }, async (dir) => {
    await assert.rejects(
      AutoencoderKL.fromPretrained(dir),
      new RegExp(`missing keys: .*resnets\\.${layers}\\.`),
    );
  });
  await withFolder({ ...cfg, mid_block_add_attention: false }, async (dir) => {
    await assert.rejects(AutoencoderKL.fromPretrained(dir), /unexpected keys: .*mid_block\.attentions\.0\./);
  });
});

test('missing weights or config give a ModelLoadError naming the folder', async () => {
  await withTempDir(async (dir) => {
    copyFileSync(join(VAE_DIR, 'config.json'), join(dir, 'config.json'));
    await assert.rejects(
      AutoencoderKL.fromPretrained(dir),
      (e: unknown) =>
        e instanceof ModelLoadError && e.message.includes(dir) && /no weights file/.test(e.message),
    );
    await assert.rejects(AutoencoderKL.fromPretrained(dir, { variant: null }), /no weights file/);
  });
  await withTempDir(async (dir) => {
    copyFileSync(join(VAE_DIR, WEIGHTS), join(dir, WEIGHTS));
    await assert.rejects(
      AutoencoderKL.fromPretrained(dir),
      (e: unknown) => e instanceof ModelLoadError && /config\.json/.test(e.message),
    );
  });
});

test('bad inputs to encode/decode are rejected with the reason', async () => {
  const vae = await AutoencoderKL.fromPretrained(VAE_DIR);
  const f = vae.scaleFactor;
  const c = vae.config.inChannels;
  const z = vae.config.latentChannels;
  const odd = 4 * f + 1;
  await assert.rejects(
    vae.encode(hostTensor(new Float32Array(c * odd * 4 * f), [1, c, odd, 4 * f])),
    new RegExp(`size ${odd}×${4 * f} is not divisible by the VAE scale factor ${f}`),
  );
  await assert.rejects(
    vae.encode(hostTensor(new Float32Array(16 * 16), [1, 1, 16, 16])),
    /images must have shape \[N, 3, H, W\]/,
  );
  await assert.rejects(
    vae.decode(hostTensor(new Float32Array((z + 1) * 16), [1, z + 1, 4, 4])),
    /latents must have shape/,
  );
  await assert.rejects(
    vae.decode(hostTensor(new Float64Array(z * 16), [1, z, 4, 4])),
    /latents must be float32/,
  );
  await assert.rejects(
    vae.decode(hostTensor(new Float32Array(z * 16), [1, z, 4, 4]), { batchSize: 0 }),
    /batchSize must be a positive integer/,
  );
  const fresh = AutoencoderKL.fromConfig(vaeConfigJson());
  await assert.rejects(fresh.decode(hostTensor(new Float32Array(z * 16), [1, z, 4, 4])), /has no weights/);
});
