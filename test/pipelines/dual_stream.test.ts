// DSDN end to end on the shipped default model: `kinema train dsdn` (2 steps, a stop and a resume) writes a
// pipeline folder that DualStreamPipeline and `kinema generate --model` load; λ scales and the interaction switch
// change the output, bad requests are named errors before any output, the job server leaves DSDN folders out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTrain } from '../../src/cli/train.js';
import { DualStreamPipeline } from '../../src/pipelines/dual_stream.js';
import type { DualStreamOptions } from '../../src/pipelines/dual_stream.js';
import { ModelRegistry } from '../../src/server/models.js';

function kinema(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    timeout: 180_000,
  });
}

async function frames(pipe: DualStreamPipeline, o: Partial<DualStreamOptions> = {}): Promise<Float32Array> {
  const opts = {
    prompt: 'a red circle moves right',
    numFrames: 4,
    width: 32,
    height: 32,
    numInferenceSteps: 2,
  };
  for await (const e of pipe.generate({ ...opts, seed: 3, guidanceScale: 5, ...o }))
    if (e.kind === 'done') return e.framesFloat;
  throw new Error('no done event');
}

function differ(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('train dsdn → pipeline folder → generate (library and CLI), with named errors for bad requests', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-dsdn-'));
  try {
    const out = join(root, 'run');
    const model = join(root, 'models', 'tiny-dsdn');
    const flags = {
      seed: 0,
      out,
      steps: 2,
      batch: 1,
      rank: 2,
      targets: 'to_q,to_v',
      frames: 4,
      export: model,
    };
    const first = await runTrain('dsdn', { ...flags, stopAfter: 1 });
    assert.equal(first.completed, false);
    assert.equal(existsSync(model), false, 'no folder before the run completes');
    const second = await runTrain('dsdn', flags);
    assert.equal(second.completed, true);
    assert.equal(second.step, 2);
    const index = JSON.parse(readFileSync(join(model, 'model_index.json'), 'utf8'));
    assert.equal(index._class_name, 'DualStreamPipeline');
    const cfg = JSON.parse(readFileSync(join(model, 'dsdn', 'config.json'), 'utf8'));
    assert.ok(cfg.motion_scale > 0 && cfg.content_lora.rank === 2);

    const pipe = await DualStreamPipeline.fromPretrained(model);
    const a = await frames(pipe);
    assert.equal(a.length, 4 * 32 * 32 * 3);
    assert.equal(differ(a, await frames(pipe)), 0, 'same seed, same video');
    assert.ok(differ(a, await frames(pipe, { seed: 4 })) > 0.01, 'another seed, another video');
    // 2 steps of training moved the interaction and both increments off zero: each switch changes the video.
    assert.ok(differ(a, await frames(pipe, { interaction: false })) > 0, 'interaction on vs off');
    assert.ok(differ(a, await frames(pipe, { motionScale: 0 })) > 0, 'λ_m 1 vs 0');
    assert.ok(differ(a, await frames(pipe, { contentScale: 0 })) > 0, 'λ_c 1 vs 0');
    assert.equal(differ(a, await frames(pipe, { contentScale: 1, motionScale: 1 })), 0, 'back at λ = 1');
    await assert.rejects(frames(pipe, { contentScale: Number.NaN }), /content scale must be a finite number/);

    const gif = join(root, 'v.gif');
    const base = [
      'generate',
      'a red circle moves right',
      '--frames',
      '4',
      '--width',
      '32',
      '--height',
      '32',
      '--steps',
      '2',
    ];
    const ok = kinema([
      ...base,
      '--model',
      model,
      '--content-scale',
      '0.5',
      '--motion-scale',
      '2',
      '-o',
      gif,
    ]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.ok(readFileSync(gif).subarray(0, 3).toString() === 'GIF');
    const refused = [
      [['--content-scale', 'x', '--model', model], /--content-scale.*\[CLI_BAD_ARGUMENT\]/],
      [['--motion-scale', '1'], /--motion-scale applies to DSDN dual-stream models.*\[GENERATE_BAD_OPTION\]/],
      [
        ['--model', model, '--long', 'vidrd', '--frames', '24'],
        /DSDN dual-stream model.*drop --long.*\[GENERATE_BAD_OPTION\]/,
      ],
      [['--model', model, '--lora', gif], /is a DSDN model.*\[GENERATE_BAD_OPTION\]/],
    ] as const;
    for (const [extra, re] of refused) {
      const bad = join(root, 'bad.mp4');
      const r = kinema([...base, ...extra, '-o', bad]);
      assert.equal(r.status, 1, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(existsSync(bad), false);
    }
    // The job server lists single-stream folders only.
    assert.deepEqual(
      new ModelRegistry([join(root, 'models')]).list().map((m) => m.id),
      [],
    );
    // A broken dsdn/config.json is named before any output.
    const cfgPath = join(model, 'dsdn', 'config.json');
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, combiner_gamma: 3 }));
    await assert.rejects(DualStreamPipeline.fromPretrained(model), /"combiner_gamma" must be in \[0, 1\]/);
    const r = kinema([...base, '--model', model, '-o', join(root, 'c.mp4')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /combiner_gamma.*\[DSDN_BAD_CONFIG\]/);
    assert.equal(existsSync(join(root, 'c.mp4')), false);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
