// `kinema generate` end to end on the tiny parity checkpoint (assembled into a diffusers folder with symlinks).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readAllFrames } from '../../src/io/video/index.js';
import { writeSafetensors } from '../../src/io/safetensors.js';

const FIX = resolve(
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity'),
);

function modelFolder(root: string): string {
  const dir = join(root, 'model');
  rmSync(dir, { recursive: true, force: true });
  symlinkSync(FIX, join(root, 'fix'));
  const links: Record<string, string> = {
    tokenizer: 'tokenizer',
    text_encoder: 'text_encoder',
    unet: 'unet3d',
    vae: 'vae',
    scheduler: 'scheduler/ddim',
  };
  spawnSync('mkdir', ['-p', dir]);
  copyFileSync(join(FIX, 'pipeline', 'model_index.json'), join(dir, 'model_index.json'));
  for (const [name, target] of Object.entries(links)) symlinkSync(join(FIX, target), join(dir, name));
  return dir;
}

function kinema(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    timeout: 300_000,
  });
}

test('kinema generate writes a playable MP4; bad input fails cleanly without an output file', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-gen-'));
  try {
    const model = modelFolder(root);
    const out = join(root, 'clip.mp4');
    const ok = kinema([
      'generate',
      '--model',
      model,
      'a red circle moving left',
      '--frames',
      '4',
      '--steps',
      '2',
      '--height',
      '32',
      '--width',
      '32',
      '--seed',
      '1',
      '-o',
      out,
    ]);
    assert.equal(ok.status, 0, ok.stderr);
    const { info, frames } = await readAllFrames(out);
    assert.equal(frames.length, 4);
    assert.equal(info.width, 32);

    // Reproducible from given latents, written as PNG frames.
    const latents = join(root, 'latents.safetensors');
    writeSafetensors(latents, {
      latents: { dtype: 'F32', shape: [1, 4, 2, 16, 16], data: new Float32Array(2048).fill(0.1) },
    });
    const pngDir = join(root, 'frames');
    const withLatents = kinema([
      'generate',
      '--model',
      model,
      'a red circle',
      '--latents',
      latents,
      '--steps',
      '1',
      '--format',
      'png',
      '-o',
      pngDir,
    ]);
    assert.equal(withLatents.status, 0, withLatents.stderr);
    assert.equal(readdirSync(pngDir).filter((f) => f.endsWith('.png')).length, 2);

    const cases: Array<[string[], RegExp]> = [
      [['--model', join(root, 'nope'), 'x'], /not a diffusers model folder/],
      [
        ['--model', model, 'x', '--height', '33', '--width', '32'],
        /must be multiples of 2 \(this model's VAE factor\) \[GENERATE_BAD_SIZE\]/,
      ],
      [['--model', model, 'x', '--steps', '0'], /--steps must be an integer/],
      [['--model', model, 'x', '--latents', out], /safetensors|header/i],
    ];
    for (const [args, msg] of cases) {
      const bad = join(root, 'bad.mp4');
      const r = kinema(['generate', ...args, '-o', bad]);
      assert.notEqual(r.status, 0, `should fail: ${args.join(' ')}`);
      assert.match(r.stderr, msg);
      assert.equal(existsSync(bad), false, 'no half-written output');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
