// Parity checks of a scheduler against a diffusers fixture folder (see the fixture README, "scheduler/").

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { schedulerFromConfig, type Scheduler } from '../../src/schedulers/index.js';
import {
  ATOL,
  RTOL,
  closeness,
  fixtureExists,
  loadSchedulerFixture,
  maxAbsDiff,
  slice,
  timestepSchedules,
  type SchedulerFixture,
} from './parity_fixture.js';

const fmt = (x: number): string => x.toExponential(2);

/** Registers the parity tests for `scheduler/<name>/`. */
export function schedulerParitySuite(name: string): void {
  const skip = fixtureExists(`scheduler/${name}`) ? false : `fixture scheduler/${name} not found`;
  let fixture: Promise<SchedulerFixture> | undefined;
  const load = (): Promise<SchedulerFixture> => (fixture ??= loadSchedulerFixture(name));

  test(
    `${name}: betas and alphas_cumprod equal diffusers' float32 tensors bit for bit`,
    { skip },
    async () => {
      const fx = await load();
      const s = schedulerFromConfig(fx.config);
      assert.equal(maxAbsDiff(s.betas, fx.get('betas').data), 0, 'betas differ');
      assert.equal(maxAbsDiff(s.alphasCumprod, fx.get('alphas_cumprod').data), 0, 'alphas_cumprod differ');
      assert.equal(s.initNoiseSigma, fx.get('init_noise_sigma').data[0]);
    },
  );

  test(`${name}: timesteps for every stored step count`, { skip }, async () => {
    const fx = await load();
    const schedules = timestepSchedules(fx);
    assert.ok(schedules.size >= 3, `expected several timestep schedules, found ${schedules.size}`);
    for (const [n, expected] of schedules) {
      const s = schedulerFromConfig(fx.config);
      s.setTimesteps(n);
      assert.deepEqual(s.timesteps, expected, `set_timesteps(${n})`);
    }
  });

  test(
    `${name}: sequential steps reproduce prev_samples (atol ${ATOL}, rtol ${RTOL})`,
    { skip },
    async (t) => {
      const fx = await load();
      const s = schedulerFromConfig(fx.config);
      const timesteps = fx.ints('timesteps');
      s.setTimesteps(timesteps.length);
      if ('sigmas' in s && fx.tensors.has('sigmas')) {
        const c = closeness(s.sigmas as Float32Array, fx.get('sigmas').data, 0, 1e-7);
        assert.ok(c.ok, `sigmas differ: max abs ${fmt(c.maxAbs)}`);
      }
      const errors = replaySteps(s, fx, timesteps);
      t.diagnostic(`max |Δprev| ${fmt(errors.prev.maxAbs)}, max |Δx0| ${fmt(errors.x0.maxAbs)}`);
      assert.ok(
        errors.prev.ok,
        `prev_sample off by ${fmt(errors.prev.maxAbs)} (${errors.prev.worstRatio.toFixed(2)}× tol)`,
      );
      assert.ok(errors.x0.ok, `pred_original_sample off by ${fmt(errors.x0.maxAbs)}`);
    },
  );

  test(`${name}: add_noise`, { skip }, async (t) => {
    const fx = await load();
    const s = schedulerFromConfig(fx.config);
    s.setTimesteps(fx.ints('timesteps').length);
    const out = s.addNoise(
      fx.get('add_noise_original').data,
      fx.get('add_noise_noise').data,
      fx.ints('add_noise_timesteps'),
    );
    const c = closeness(out, fx.get('add_noise_out').data, ATOL, RTOL);
    t.diagnostic(`max |Δ| ${fmt(c.maxAbs)}`);
    assert.ok(c.ok, `add_noise off by ${fmt(c.maxAbs)}`);
  });
}

interface ReplayErrors {
  prev: { ok: boolean; maxAbs: number; worstRatio: number };
  x0: { ok: boolean; maxAbs: number; worstRatio: number };
}

/** x = sample_init · init_noise_sigma; x = step(model_outputs[i], timesteps[i], x) for every i, comparing each. */
function replaySteps(s: Scheduler, fx: SchedulerFixture, timesteps: number[]): ReplayErrors {
  let x: Float32Array = fx.get('sample_init').data.map((v) => v * s.initNoiseSigma);
  const noise = fx.tensors.get('variance_noise');
  const x0Ref = fx.tensors.get('pred_original_samples');
  const errors: ReplayErrors = {
    prev: { ok: true, maxAbs: 0, worstRatio: 0 },
    x0: { ok: true, maxAbs: 0, worstRatio: 0 },
  };
  const merge = (into: ReplayErrors['prev'], c: ReplayErrors['prev']): void => {
    into.ok &&= c.ok;
    into.maxAbs = Math.max(into.maxAbs, c.maxAbs);
    into.worstRatio = Math.max(into.worstRatio, c.worstRatio);
  };
  timesteps.forEach((timestep, i) => {
    const opts = noise === undefined ? undefined : { noise: slice(noise, i) };
    const r = s.step(slice(fx.get('model_outputs'), i), timestep, x, opts);
    merge(errors.prev, closeness(r.prevSample, slice(fx.get('prev_samples'), i), ATOL, RTOL));
    if (x0Ref !== undefined) {
      assert.ok(r.predOriginalSample !== undefined, 'pred_original_sample missing');
      merge(errors.x0, closeness(r.predOriginalSample, slice(x0Ref, i), ATOL, RTOL));
    }
    x = r.prevSample;
  });
  return errors;
}
