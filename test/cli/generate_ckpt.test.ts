// `kinema generate --model X.ckpt --config inference.yaml --tokenizer DIR`: a VideoCrafter checkpoint as released
// (the tiny whole-checkpoint fixture, scripts/fixtures/lvdm_whole.py) runs end to end; missing or misplaced flags,
// a broken YAML and a hostile pickle are refused by name before any output, and no pickled code runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { textToVideoFromCheckpoint } from '../../src/pipelines/lvdm_checkpoint.js';

const CKPT = resolve('test/fixtures/lvdm/whole.ckpt');
const YAML = resolve('test/fixtures/lvdm/whole.yaml');
const TOKENIZER = resolve('models/default/tokenizer');

function kinema(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
}

test('a VideoCrafter checkpoint generates through the library and the CLI; bad requests are named', async () => {
  const pipe = await textToVideoFromCheckpoint(CKPT, { config: YAML, tokenizer: TOKENIZER, textHeads: 2 });
  const opts = {
    prompt: 'a red circle moves right',
    numFrames: 4,
    width: 32,
    height: 32,
    numInferenceSteps: 2,
  };
  const run = async (seed: number): Promise<Float32Array> => {
    for await (const e of pipe.generate({ ...opts, seed })) if (e.kind === 'done') return e.framesFloat;
    throw new Error('no frames');
  };
  const a = await run(1);
  assert.equal(a.length, 4 * 32 * 32 * 3);
  assert.deepEqual(await run(1), a, 'seeded');
  assert.notDeepEqual(await run(2), a);
  assert.equal(pipe.components.scheduler.config.numTrainTimesteps, 1000);

  const dir = mkdtempSync(join(tmpdir(), 'kinema-ckpt-'));
  try {
    const base = [
      'generate',
      'a red circle moves right',
      '--frames',
      '4',
      '--steps',
      '2',
      '--width',
      '32',
      '--height',
      '32',
    ];
    const gif = join(dir, 'v.gif');
    const ok = kinema([...base, '--model', CKPT, '--config', YAML, '--tokenizer', TOKENIZER, '-o', gif]);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(readFileSync(gif).subarray(0, 3).toString(), 'GIF');
    const badYaml = join(dir, 'bad.yaml');
    writeFileSync(badYaml, readFileSync(YAML, 'utf8').replace('timesteps: 1000', 'timesteps: lots'));
    const cases: [string[], RegExp][] = [
      [['--model', CKPT], /give its inference YAML \(--config.*\[GENERATE_BAD_OPTION\]/],
      [['--config', YAML], /--config applies to --model <file\.ckpt>.*\[GENERATE_BAD_OPTION\]/],
      [
        ['--model', CKPT, '--config', badYaml, '--tokenizer', TOKENIZER],
        /timesteps must be a number.*\[LVDM_CONFIG\]/,
      ],
      [
        ['--model', CKPT, '--config', YAML, '--tokenizer', dir],
        /no tokenizer\.json or vocab\.json.*\[GENERATE_BAD_OPTION\]/,
      ],
      [
        [
          '--model',
          resolve('test/fixtures/torch_ckpt/hostile_os_system.pt'),
          '--config',
          YAML,
          '--tokenizer',
          TOKENIZER,
        ],
        /posix\.system.*\[CKPT_UNSAFE_GLOBAL\]/,
      ],
      [
        ['--model', CKPT, '--config', YAML, '--tokenizer', TOKENIZER, '--long', 'vidrd', '--frames', '24'],
        /--long is not implemented for VideoCrafter checkpoints.*\[GENERATE_BAD_OPTION\]/,
      ],
    ];
    for (const [extra, re] of cases) {
      const out = join(dir, 'bad.mp4');
      const r = kinema([...base, ...extra, '-o', out]);
      assert.equal(r.status, 1, `${extra.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(existsSync(out), false);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
