// `kinema train lora`: trains only the adapter on the frozen default model, resumes after a stop, saves a
// PEFT-layout file that `--lora` loads, and reads a folder of the user's own captioned clips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTrain } from '../../src/cli/train.js';
import { readLoRAFile } from '../../src/io/lora_file.js';
import { writeVideo } from '../../src/io/video/index.js';
import { readClipFolder, clipFolderSource } from '../../src/training/data/clip_folder.js';
import { TextToVideoPipeline } from '../../src/pipelines/text_to_video.js';
import { loadLoRAs } from '../../src/pipelines/lora.js';
import { DEFAULT_MODEL_DIR } from '../../src/cli/generate.js';

test('train lora: 2 steps with a stop and a resume, adapter file loads onto the default model', async () => {
  const out = mkdtempSync(join(tmpdir(), 'kinema-lora-train-'));
  try {
    const flags = {
      seed: 0,
      out,
      steps: 2,
      batch: 1,
      rank: 2,
      targets: 'to_q,to_v',
      worldBackground: 'stripes',
      frames: 4,
    };
    const first = await runTrain('lora', { ...flags, stopAfter: 1 });
    assert.equal(first.completed, false);
    assert.equal(first.step, 1);
    assert.ok(!existsSync(join(out, 'lora.safetensors')), 'no adapter before the run completes');
    const second = await runTrain('lora', flags);
    assert.equal(second.completed, true);
    assert.equal(second.step, 2);
    assert.equal(second.losses.length, 2);
    const file = readLoRAFile(join(out, 'lora.safetensors'));
    assert.equal(file.layout, 'peft');
    const modules = file.components.get('unet')!;
    assert.ok(modules.size > 0 && [...modules.keys()].every((k) => /\.(to_q|to_v)$/.test(k)));
    const w = [...modules.values()][0]!;
    assert.equal(w.rank, 2);
    assert.ok(
      w.up.data.some((v) => v !== 0),
      'B moved off zero: the adapter was trained',
    );
    const pipe = await TextToVideoPipeline.fromPretrained(DEFAULT_MODEL_DIR);
    assert.equal(loadLoRAs(pipe, [{ path: join(out, 'lora.safetensors'), scale: 1 }]).length, modules.size);
    // lora-only flags are refused on other stages, and a bad background names the choices
    await assert.rejects(
      runTrain('unet', { seed: 0, rank: 2 }),
      /--rank applies to the lora and dsdn stages only/,
    );
    await assert.rejects(runTrain('lora', { ...flags, worldBackground: 'plaid' }), /stripes/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a clip folder: captions by name, resized frames, windows walk through each clip, errors name the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-clips-'));
  try {
    const frames = Array.from({ length: 6 }, (_, i) => new Uint8Array(32 * 32 * 3).fill(i * 40));
    await writeVideo(join(dir, 'a.webm'), frames, { width: 32, height: 32, fps: 8, format: 'webm' });
    writeFileSync(join(dir, 'a.txt'), 'a grey fade\n');
    const clips = await readClipFolder(dir, { width: 16, height: 16, frames: 4 });
    assert.equal(clips.length, 1);
    assert.equal(clips[0]!.caption, 'a grey fade');
    assert.equal(clips[0]!.frames[0]!.length, 16 * 16 * 3);
    const source = clipFolderSource(clips);
    const req = { width: 16, height: 16, frames: 4, imageMode: false };
    const s0 = await source(0, req);
    const s1 = await source(1, req);
    assert.equal(s0.frames.length, 4);
    assert.ok(s1.frames[0]![0]! > s0.frames[0]![0]!, 'the next example starts one frame later');
    await assert.rejects(readClipFolder(dir, { width: 16, height: 16, frames: 8 }), /a\.webm has 6 frames/);
    mkdirSync(join(dir, 'sub'));
    await writeVideo(join(dir, 'sub', 'b.webm'), frames, { width: 32, height: 32, fps: 8, format: 'webm' });
    await assert.rejects(readClipFolder(join(dir, 'sub'), req), /b\.webm has no caption file b\.txt/);
    await assert.rejects(readClipFolder(join(dir, 'none'), req), /not a folder/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
