// The FileLoader seam: joinPath behaves as node:path's join on '/' paths, the in-memory loader answers as the
// disk does, and the default model loads (and generates the same first latents) from memory alone — which
// shows every file read of fromPretrained goes through the loader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { joinPath } from '../../src/io/loader.js';
import type { FileLoader } from '../../src/io/loader.js';
import { MemoryLoader } from '../../src/io/memory_loader.js';
import { nodeLoader } from '../../src/io/node_loader.js';
import { ModelLoadError, findWeightsFile } from '../../src/io/model_folder.js';
import { SafetensorsError, SafetensorsFile, serializeSafetensors } from '../../src/io/safetensors.js';
import { TextToVideoPipeline } from '../../src/pipelines/text_to_video.js';

test('joinPath matches node:path posix join', () => {
  const cases = [
    ['models/default', 'unet'],
    ['./models//default/', 'unet', 'config.json'],
    ['../a', 'b', '..', 'c'],
    ['/abs', '..', '..', 'x'],
    ['a', ''],
    ['', ''],
    ['.', 'b'],
  ];
  for (const c of cases) assert.equal(joinPath(...c), posix.join(...c), JSON.stringify(c));
});

function memoryCopy(dir: string, into = new MemoryLoader(), as = dir): MemoryLoader {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) memoryCopy(p, into, `${as}/${name}`);
    else into.set(`${as}/${name}`, new Uint8Array(readFileSync(p)));
  }
  return into;
}

test('MemoryLoader answers kind, list, readText and open as the disk does', () => {
  const mem = memoryCopy('models/default');
  for (const loader of [mem, nodeLoader] as FileLoader[]) {
    assert.equal(loader.kind('models/default'), 'dir');
    assert.equal(loader.kind('models/default/unet/config.json'), 'file');
    assert.equal(loader.kind('models/default/nope'), null);
    assert.deepEqual(
      loader.list('models/default').map((e) => `${e.name}${e.isDir ? '/' : ''}`),
      [
        'MODEL_CARD.md',
        'image_adapter/',
        'image_encoder/',
        'lora/',
        'model_index.json',
        'scheduler/',
        'streaming/',
        'text_encoder/',
        'tokenizer/',
        'unet/',
        'vae/',
      ],
    );
    assert.match(loader.readText('models/default/model_index.json'), /"unet"/);
    const f = loader.open('models/default/unet/diffusion_pytorch_model.safetensors');
    assert.equal(f.read(f.size - 4, 100).length, 4, 'a read past the end is short');
    f.close();
    assert.throws(() => loader.readText('models/default/missing.json'), { code: 'ENOENT' });
  }
  assert.equal(
    findWeightsFile('models/default/vae', { loader: mem }),
    'models/default/vae/diffusion_pytorch_model.safetensors',
  );
  assert.throws(() => findWeightsFile('models/default/none', { loader: mem }), ModelLoadError);
});

test('SafetensorsFile reads from bytes and names a truncated file', () => {
  const bytes = serializeSafetensors({ w: { dtype: 'F32', shape: [2], data: Float32Array.of(1.5, -2) } });
  const f = SafetensorsFile.fromBytes('mem.safetensors', bytes);
  assert.deepEqual([...f.readFloat32('w')], [1.5, -2]);
  assert.throws(
    () => SafetensorsFile.fromBytes('cut.safetensors', bytes.subarray(0, bytes.length - 1)),
    (e: unknown) => e instanceof SafetensorsError && /cut\.safetensors/.test(e.message),
  );
  const mem = new MemoryLoader([['x/cut.safetensors', bytes.subarray(0, 5)]]);
  assert.throws(() => SafetensorsFile.open('x/missing.safetensors', mem), { code: 'SAFETENSORS_NOT_FOUND' });
});

test('the default pipeline loads from an in-memory folder alone and starts from the same latents', async () => {
  const disk = await TextToVideoPipeline.fromPretrained('models/default');
  const mem = await TextToVideoPipeline.fromPretrained('models/default', {
    loader: memoryCopy('models/default'),
  });
  const opts = { prompt: 'a red circle', seed: 5, numFrames: 4, height: 64, width: 64 };
  assert.deepEqual(mem.prepareLatents(opts).data, disk.prepareLatents(opts).data);
  const a = await disk.encodePrompt('a red circle moves left');
  const b = await mem.encodePrompt('a red circle moves left');
  assert.deepEqual(b.data, a.data);
  await assert.rejects(
    TextToVideoPipeline.fromPretrained('elsewhere', { loader: memoryCopy('models/default') }),
    ModelLoadError,
  );
});
