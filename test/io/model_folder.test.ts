import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import {
  ModelLoadError,
  componentDir,
  findWeightsFile,
  loadStateDict,
  readConfig,
  readModelIndex,
} from '../../src/io/model_folder.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { f16ToF32, f32ToBF16, f32ToF16 } from '../../src/io/half.js';

const FIXTURES = resolve(process.cwd(), '../shared/fixtures/parity');
const temps: string[] = [];
after(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kinema-model-folder-'));
  temps.push(d);
  return d;
}

const VALUES = Float32Array.from([0.1, -2.5, 3.25, 1e-3, 65504, -0.0078125]);

test('readConfig reads the fixture configs (including non-standard JSON literals)', () => {
  const unet = readConfig(join(FIXTURES, 'unet3d'));
  assert.equal(unet['_class_name'], 'UNet3DConditionModel');
  assert.deepEqual(unet['block_out_channels'], [32, 64]);
  const text = readConfig(join(FIXTURES, 'text_encoder'));
  assert.equal(text['hidden_act'], 'gelu');
  const dir = tempDir();
  writeFileSync(join(dir, 'config.json'), '{"lambda_min_clipped": -Infinity, "x": NaN}');
  const cfg = readConfig(dir);
  assert.equal(cfg['lambda_min_clipped'], Number.NEGATIVE_INFINITY);
  assert.ok(Number.isNaN(cfg['x']));
});

test('readConfig: missing, invalid and non-object configs are ModelLoadErrors naming the path', () => {
  const dir = tempDir();
  assert.throws(
    () => readConfig(dir),
    (e: unknown) => e instanceof ModelLoadError && e.message.includes(join(dir, 'config.json')),
  );
  writeFileSync(join(dir, 'config.json'), '{"a": 1,');
  assert.throws(
    () => readConfig(dir),
    (e: unknown) => e instanceof ModelLoadError && /not valid JSON/.test(e.message),
  );
  writeFileSync(join(dir, 'config.json'), '[1, 2]');
  assert.throws(() => readConfig(dir), /must hold a JSON object/);
});

test('readModelIndex and componentDir on the pipeline fixture layout', () => {
  const index = readModelIndex(join(FIXTURES, 'pipeline'));
  assert.deepEqual(index['unet'], ['diffusers', 'UNet3DConditionModel']);
  assert.deepEqual(index['text_encoder'], ['transformers', 'CLIPTextModel']);
  assert.equal(componentDir(FIXTURES, 'vae'), join(FIXTURES, 'vae'));
  assert.throws(
    () => componentDir(FIXTURES, 'unet'),
    (e: unknown) =>
      e instanceof ModelLoadError &&
      /no component folder 'unet'/.test(e.message) &&
      e.message.includes('unet3d'),
  );
  assert.throws(
    () => readModelIndex(join(FIXTURES, 'vae')),
    (e: unknown) => e instanceof ModelLoadError && e.message.includes('model_index.json'),
  );
  assert.throws(() => componentDir(join(FIXTURES, 'nope'), 'vae'), /does not exist/);
});

test('loadStateDict loads the fixture weights by their checkpoint keys', () => {
  for (const [folder, file, count] of [
    ['unet3d', 'diffusion_pytorch_model.safetensors', 466],
    ['vae', 'diffusion_pytorch_model.safetensors', 124],
    ['text_encoder', 'model.safetensors', 36],
  ] as const) {
    const dir = join(FIXTURES, folder);
    assert.equal(basename(findWeightsFile(dir)), file);
    const { stateDict, shapes, dtypes } = loadStateDict(dir);
    assert.equal(stateDict.size, count, folder);
    const raw = SafetensorsFile.open(join(dir, file));
    try {
      for (const name of raw.names().slice(0, 5)) {
        assert.deepEqual(shapes.get(name), raw.info(name).shape);
        assert.equal(dtypes.get(name), 'F32');
        assert.deepEqual(stateDict.get(name), raw.readFloat32(name));
      }
    } finally {
      raw.close();
    }
  }
  const text = loadStateDict(join(FIXTURES, 'text_encoder'));
  assert.deepEqual(text.shapes.get('text_model.embeddings.token_embedding.weight'), [49408, 32]);
});

test('keyMap renames and drops keys at the load boundary', () => {
  const { stateDict } = loadStateDict(join(FIXTURES, 'text_encoder'), {
    keyMap: (k) => (k.includes('layers.1.') ? null : k.replace(/^text_model\./, '')),
  });
  assert.ok(stateDict.has('embeddings.token_embedding.weight'));
  assert.ok(![...stateDict.keys()].some((k) => k.startsWith('text_model.') || k.includes('layers.1.')));
  assert.throws(
    () => loadStateDict(join(FIXTURES, 'text_encoder'), { keyMap: () => 'same' }),
    (e: unknown) => e instanceof ModelLoadError && /already loaded/.test(e.message),
  );
});

test('fp16 / bf16 variants: upcast to float32, plain file preferred, variant used when alone', () => {
  const dir = tempDir();
  writeSafetensors(join(dir, 'diffusion_pytorch_model.fp16.safetensors'), {
    w: { dtype: 'F16', shape: [2, 3], data: f32ToF16(VALUES) },
  });
  assert.equal(basename(findWeightsFile(dir)), 'diffusion_pytorch_model.fp16.safetensors');
  const half = loadStateDict(dir, { variant: 'fp16' });
  assert.equal(half.dtypes.get('w'), 'F16');
  assert.deepEqual(half.shapes.get('w'), [2, 3]);
  assert.deepEqual(half.stateDict.get('w'), f16ToF32(f32ToF16(VALUES)));
  assert.equal(half.stateDict.get('w')![4], 65504);
  assert.throws(
    () => findWeightsFile(dir, { variant: null }),
    (e: unknown) => e instanceof ModelLoadError && e.message.includes(dir),
  );
  assert.throws(() => findWeightsFile(dir, { variant: 'bf16' }), ModelLoadError);

  const bfDir = tempDir();
  writeSafetensors(join(bfDir, 'model.bf16.safetensors'), {
    w: { dtype: 'BF16', shape: [6], data: f32ToBF16(VALUES) },
  });
  const bf = loadStateDict(bfDir);
  assert.equal(bf.dtypes.get('w'), 'BF16');
  assert.equal(bf.stateDict.get('w')![2], 3.25);

  writeSafetensors(join(dir, 'diffusion_pytorch_model.safetensors'), {
    w: { dtype: 'F32', shape: [2, 3], data: VALUES },
  });
  assert.equal(basename(findWeightsFile(dir, { variant: 'fp16' })), 'diffusion_pytorch_model.safetensors');
  assert.deepEqual(loadStateDict(dir).stateDict.get('w'), VALUES);
});

test('sharded checkpoints load through their index; broken indexes are named', () => {
  const dir = tempDir();
  writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), {
    a: { dtype: 'F32', shape: [3], data: VALUES.subarray(0, 3) },
  });
  writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), {
    b: { dtype: 'F16', shape: [3], data: f32ToF16(VALUES.subarray(3)) },
  });
  const index = {
    metadata: { total_size: 18 },
    weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' },
  };
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
  assert.equal(basename(findWeightsFile(dir)), 'model.safetensors.index.json');
  const { stateDict, dtypes } = loadStateDict(dir);
  assert.deepEqual([...stateDict.keys()].sort(), ['a', 'b']);
  assert.deepEqual(stateDict.get('a'), VALUES.slice(0, 3));
  assert.equal(dtypes.get('b'), 'F16');
  assert.equal(stateDict.get('b')![1], 65504);

  writeFileSync(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ weight_map: { ...index.weight_map, c: 'model-00002-of-00002.safetensors' } }),
  );
  assert.throws(
    () => loadStateDict(dir),
    (e: unknown) => e instanceof ModelLoadError && /'c'/.test(e.message),
  );
  writeFileSync(
    join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ weight_map: { a: 'model-00003-of-00003.safetensors' } }),
  );
  assert.throws(() => loadStateDict(dir), /model-00003-of-00003\.safetensors, which is missing/);
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {} }));
  assert.throws(() => loadStateDict(dir), /no "weight_map"/);
});

test('folders with only .bin weights, or none, get a clear error', () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'pytorch_model.bin'), 'not really a pickle');
  assert.throws(
    () => findWeightsFile(dir),
    (e: unknown) =>
      e instanceof ModelLoadError &&
      /only \.safetensors/.test(e.message) &&
      e.message.includes('pytorch_model.bin'),
  );
  const empty = tempDir();
  mkdirSync(join(empty, 'sub'));
  assert.throws(
    () => loadStateDict(empty),
    (e: unknown) => e instanceof ModelLoadError && /no weights file/.test(e.message),
  );
  assert.throws(() => loadStateDict(join(empty, 'missing')), /does not exist/);
});
