// `kinema generate --long …`: the flags' checks (named errors before any work, no output file) and tiny
// end-to-end runs on the parity checkpoint that stream chunk by chunk into one video (plain and --refine).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readAllFrames } from '../../src/io/video/index.js';
import { longVideoRequest, parseDsgStages } from '../../src/cli/long_video_options.js';
import { planGenerate } from '../../src/cli/generate_checks.js';
import type { GenerateCheckFlags } from '../../src/cli/generate_checks.js';

const FIX = resolve(
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity'),
);

function modelFolder(root: string): string {
  const dir = join(root, 'model');
  mkdirSync(dir);
  copyFileSync(join(FIX, 'pipeline', 'model_index.json'), join(dir, 'model_index.json'));
  const links = {
    tokenizer: 'tokenizer',
    text_encoder: 'text_encoder',
    unet: 'unet3d',
    vae: 'vae',
    scheduler: 'scheduler/ddim',
  };
  for (const [name, target] of Object.entries(links)) symlinkSync(join(FIX, target), join(dir, name));
  return dir;
}

const kinema = (args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    timeout: 300_000,
  });

test('long-video flags: the request they make, and named errors for layouts that cannot work', () => {
  assert.equal(longVideoRequest({}, 16, 25), null);
  const r = longVideoRequest({ long: 'vidrd' }, 64, 25)!;
  assert.deepEqual([r.mode?.name, r.chunk, r.overlap, r.plan.chunks], ['vidrd', 16, 8, 7]);
  assert.equal(longVideoRequest({ long: 'naive', chunk: 8, overlap: 2 }, 20, 10)!.plan.chunks, 3);
  const code = (f: Parameters<typeof longVideoRequest>[0], frames = 64, steps = 25) => {
    try {
      longVideoRequest(f, frames, steps);
      return 'ok';
    } catch (e) {
      return (e as { code?: string }).code;
    }
  };
  assert.equal(code({ long: 'vidrd', chunk: 16, overlap: 16 }), 'LONG_OVERLAP_TOO_LARGE');
  assert.equal(code({ long: 'vidrd' }, 8), 'LONG_TOO_FEW_FRAMES');
  assert.equal(code({ long: 'vidrd', dsg: [10, 30] }), 'VIDRD_DSG_PAST_STEPS');
  assert.equal(code({ long: 'vidrd' }, 64, 1), 'ok', 'default DSG stages follow the step count');
  assert.equal(code({ long: 'naive', fnr: 'on' }), 'LONG_OPTION_FOR_OTHER_MODE');
  assert.equal(code({ chunk: 8 }), 'LONG_MODE_MISSING');
  assert.equal(code({ long: 'vidrd', latents: 'x.safetensors' }), 'LONG_WITH_LATENTS');
  // --refine: StreamingT2V's enhancement stage, 24/8 from T' = 600 with randomized blending by default.
  assert.deepEqual(longVideoRequest({ long: 'naive', refine: true }, 64, 25)!.refine, {
    chunk: 24,
    overlap: 8,
    strength: 600,
    blend: 'random',
    refiner: undefined,
  });
  assert.equal(longVideoRequest({ long: 'naive', refine: true, refineChunk: 4 }, 64, 25)!.refine!.overlap, 3);
  assert.equal(longVideoRequest({ long: 'naive' }, 64, 25)!.refine, null);
  assert.equal(code({ refine: true }), 'REFINE_NEEDS_LONG');
  assert.equal(code({ long: 'naive', refiner: 'models/default' }), 'REFINE_OPTION_WITHOUT_REFINE');
  assert.equal(code({ long: 'vidrd', refineStrength: 400 }), 'REFINE_OPTION_WITHOUT_REFINE');
  assert.equal(
    code({ long: 'naive', refine: true, refineChunk: 8, refineOverlap: 8 }),
    'REFINE_OVERLAP_TOO_LARGE',
  );
  assert.deepEqual(parseDsgStages('10,18'), [10, 18]);
  assert.equal(parseDsgStages('off'), 'off');
  assert.throws(() => parseDsgStages('10,x'), /--dsg must be/);
});

test('kinema generate --long streams chunks into one video; bad input fails before any work, no file', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-long-'));
  try {
    const model = modelFolder(root);
    const out = join(root, 'long.mp4');
    const common = [
      '--model',
      model,
      '--height',
      '32',
      '--width',
      '32',
      '--steps',
      '2',
      '--chunk',
      '4',
      '--overlap',
      '2',
    ];
    const ok = kinema([
      'generate',
      'a red circle moving left',
      ...common,
      '--frames',
      '9',
      '--long',
      'vidrd',
      '--dsg',
      '1',
      '-o',
      out,
    ]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stderr, /chunk 4\/4: 2 steps/);
    assert.match(ok.stderr, /frames 8–8 written/);
    const { frames, info } = await readAllFrames(out);
    assert.equal(frames.length, 9);
    assert.equal(info.width, 32);
    const cases: Array<[string[], RegExp]> = [
      [
        ['--long', 'vidrd', '--frames', '9', '--chunk', '4', '--overlap', '4'],
        /--overlap must be an integer in \[0, --chunk\)/,
      ],
      [['--long', 'vidrd', '--frames', '8'], /--frames 8 is shorter than the model's window \(--chunk 16\)/],
      [
        ['--long', 'vidrd', '--frames', '32', '--steps', '10', '--dsg', '4,12'],
        /--dsg stage boundary 12 is past the step count \(--steps 10\)/,
      ],
    ];
    for (const [args, msg] of cases) {
      const bad = join(root, 'bad.mp4');
      const t0 = performance.now();
      const r = kinema([
        'generate',
        'a red circle',
        '--model',
        join(root, 'no-model-needed'),
        ...args,
        '-o',
        bad,
      ]);
      assert.notEqual(r.status, 0, `should fail: ${args.join(' ')}`);
      assert.match(r.stderr, msg);
      assert.ok(performance.now() - t0 < 60_000);
      assert.equal(existsSync(bad), false, 'no output file');
      assert.deepEqual(
        readdirSync(root).filter((f) => f.includes('bad.mp4')),
        [],
        'no temp file either',
      );
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('kinema generate --long … --refine: generated frames stream through the refiner into one video', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-refine-'));
  try {
    const model = modelFolder(root);
    const out = join(root, 'refined.mp4');
    // The refiner checks need config files only: the folder, its class and T' against its schedule.
    const flags = (f: Partial<GenerateCheckFlags>): GenerateCheckFlags => ({
      model,
      output: join(root, 'x.mp4'),
      frames: 9,
      steps: 2,
      width: 32,
      height: 32,
      long: 'naive',
      chunk: 4,
      overlap: 2,
      refine: true,
      ...f,
    });
    const codeOf = (f: Partial<GenerateCheckFlags>) => {
      try {
        return planGenerate('a red circle', flags(f), model).refinerDir;
      } catch (e) {
        return (e as { code?: string }).code;
      }
    };
    assert.equal(codeOf({}), model, 'the generating model refines by default');
    assert.equal(codeOf({ refiner: model }), model);
    assert.equal(codeOf({ refiner: join(root, 'nope') }), 'REFINE_MODEL_NOT_FOUND');
    assert.equal(codeOf({ refiner: root }), 'REFINE_MODEL_NOT_FOUND');
    // 2 DDIM steps are 501 and 1: T' = 0 leaves none; 1000 is past the schedule.
    assert.equal(codeOf({ refineStrength: 0 }), 'REFINE_BAD_STRENGTH');
    assert.equal(codeOf({ refineStrength: 1000 }), 'REFINE_BAD_STRENGTH');
    assert.equal(existsSync(join(root, 'x.mp4')), false);
    const args = [
      'generate',
      'a red circle moving left',
      '--model',
      model,
      '--height',
      '32',
      '--width',
      '32',
    ];
    const ok = kinema([
      ...args,
      ...['--steps', '2', '--chunk', '4', '--overlap', '2', '--frames', '9', '--long', 'naive'],
      ...['--refine', '--refine-chunk', '6', '--refine-overlap', '2', '-o', out],
    ]);
    assert.equal(ok.status, 0, ok.stderr);
    // Refine chunks [0, 6) and [4, 9): the first writes frames 0–3, the last 4–8.
    assert.match(ok.stderr, /refine 1\/2: 2 steps .*→ refined frames 0–3 written/);
    assert.match(ok.stderr, /refine 2\/2: 2 steps .*→ refined frames 4–8 written/);
    assert.match(ok.stderr, /frames 8–8 generated/);
    const { frames, info } = await readAllFrames(out);
    assert.equal(frames.length, 9);
    assert.equal(info.width, 32);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
