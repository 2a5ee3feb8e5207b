// The fuzzers in npm test: every corpus input (inputs that once failed) replays without failing, and each
// target passes a fixed-seed batch of fresh cases. `npm run fuzz -- --minutes N` runs them far longer.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { prepareVideoBases, TARGETS } from './targets.js';
import { fuzzTarget, preview, replayCorpus } from './runner.js';

/** Cases per target in npm test: enough to catch a regression, few enough for seconds per target. */
const RUNS: Record<string, number> = { video: 25, torch_ckpt: 60, tokenizer: 30, cli_generate_args: 60 };

before(async () => prepareVideoBases());

for (const target of TARGETS) {
  test(`fuzz ${target.name}: corpus replay and ${RUNS[target.name] ?? 150} fresh cases`, async () => {
    const replay = await replayCorpus(target);
    assert.deepEqual(replay.failures, [], replay.failures.join('\n'));
    const r = await fuzzTarget(target, 20261205, RUNS[target.name] ?? 150);
    const f = r.failure;
    assert.equal(f, null, f ? `seed ${f.seed}: ${f.reason}\ninput: ${preview(f.input)}` : '');
  });
}
