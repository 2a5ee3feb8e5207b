import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DPMSolverMultistepScheduler, SeededNormalNoise } from '../../src/schedulers/index.js';
import { sigmaToT } from '../../src/schedulers/sigma_schedules.js';
import { schedulerParitySuite } from './parity_suite.js';

schedulerParitySuite('dpmsolver_multistep');

// For data x_0 ~ N(0, s²) the ideal denoiser is linear, E[x_0 | x_t] = α s² / (α² s² + σ_t²) · x_t, and the
// probability-flow ODE has the closed-form solution x(σ) = sqrt(v(σ)/v(σ_start)) · x_start with
// v(σ) = α² s² + σ_t² = (s² + σ²)/(1 + σ²). Solvers of order k should converge to it at rate O(h^k).
const S2 = 0.25;
const SD = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
};

function marginalVariance(sigma: number): number {
  return (S2 + sigma * sigma) / (1 + sigma * sigma);
}

/** The ideal model output (ε or x_0 or v, per prediction type) at schedule σ. */
function idealModel(x: Float32Array, sigma: number, prediction: string): Float32Array {
  const alpha = 1 / Math.sqrt(1 + sigma * sigma);
  const sigmaT = sigma * alpha;
  const gain = (alpha * S2) / marginalVariance(sigma);
  return x.map((xi) => {
    const x0 = gain * xi;
    const eps = (xi - alpha * x0) / sigmaT;
    return prediction === 'epsilon' ? eps : prediction === 'sample' ? x0 : alpha * eps - sigmaT * x0;
  });
}

// Uniform steps in λ (use_lu_lambdas) make the order visible; the schedule ends at σ_min = σ(t=0), where the
// last step has h = 0, so it is taken as a (no-op) Euler step.
const ODE_BASE = {
  final_sigmas_type: 'sigma_min',
  lower_order_final: false,
  euler_at_final: true,
  use_lu_lambdas: true,
};

function solve(
  extra: Record<string, unknown>,
  steps: number,
  x: Float32Array,
  seed = 0,
): { out: Float32Array; s: DPMSolverMultistepScheduler } {
  const s = DPMSolverMultistepScheduler.fromConfig({ ...SD, ...ODE_BASE, ...extra });
  s.setTimesteps(steps);
  const prediction = String(extra['prediction_type'] ?? 'epsilon');
  const gen = new SeededNormalNoise(seed);
  let cur = x;
  s.timesteps.forEach((t, i) => {
    cur = s.step(idealModel(cur, s.sigmas[i] as number, prediction), t, cur, { generator: gen }).prevSample;
  });
  return { out: cur, s };
}

/** Max deviation from the exact ODE solution after `steps` steps. */
function odeError(extra: Record<string, unknown>, steps: number): number {
  const x = new SeededNormalNoise(1).normal(512);
  const { out, s } = solve(extra, steps, x);
  const scale = Math.sqrt(
    marginalVariance(s.sigmas[steps] as number) / marginalVariance(s.sigmas[0] as number),
  );
  return out.reduce((m, v, i) => Math.max(m, Math.abs(v - scale * (x[i] as number))), 0);
}

test('deterministic solvers converge to the exact probability-flow ODE solution at their order', (t) => {
  for (const algorithm of ['dpmsolver++', 'dpmsolver']) {
    for (const solverType of ['midpoint', 'heun']) {
      const cfg = { algorithm_type: algorithm, solver_type: solverType };
      const e = [1, 2, 3].map((order) => [10, 20].map((n) => odeError({ ...cfg, solver_order: order }, n)));
      const [[e1a, e1b], [e2a, e2b], [e3a, e3b]] = e as [
        [number, number],
        [number, number],
        [number, number],
      ];
      const what = `${algorithm}/${solverType}`;
      t.diagnostic(
        `${what}: 10→20 steps: order 1 ${e1a.toExponential(2)}→${e1b.toExponential(2)}, 2 ${e2a.toExponential(2)}→${e2b.toExponential(2)}, 3 ${e3a.toExponential(2)}→${e3b.toExponential(2)}`,
      );
      assert.ok(
        e1a / e1b > 1.7 && e1a / e1b < 2.3,
        `${what}: order 1 should halve the error, ratio ${e1a / e1b}`,
      );
      assert.ok(e2a / e2b > 3, `${what}: order 2 error ratio ${e2a / e2b}`);
      assert.ok(e3a / e3b > 4.5, `${what}: order 3 error ratio ${e3a / e3b}`);
      assert.ok(e3b < e2b && e2b < e1b / 5, `${what}: errors at 20 steps ${e1b}, ${e2b}, ${e3b}`);
    }
  }
});

test('prediction types sample and v_prediction give the same trajectory as epsilon for the ideal model', () => {
  const base = odeError({ prediction_type: 'epsilon' }, 15);
  for (const prediction of ['sample', 'v_prediction']) {
    const e = odeError({ prediction_type: prediction }, 15);
    assert.ok(Math.abs(e - base) < 1e-4, `${prediction}: ${e} vs ${base}`);
  }
});

test('Karras and exponential σ spacings: documented spacing, and second-order convergence', (t) => {
  const karras = DPMSolverMultistepScheduler.fromConfig({ ...SD, use_karras_sigmas: true });
  karras.setTimesteps(12);
  const sig = Array.from(karras.sigmas.subarray(0, 12));
  const train = karras.trainSigmas;
  assert.ok(Math.abs((sig[0] as number) - (train[999] as number)) < 1e-5 * (train[999] as number));
  assert.ok(Math.abs((sig[11] as number) - (train[0] as number)) < 1e-6);
  assert.equal(karras.sigmas[12], 0);
  // Karras et al. eq. (5): σ^{1/ρ} is linear in the step index (ρ = 7).
  const roots = sig.map((x) => x ** (1 / 7));
  const d = (roots[1] as number) - (roots[0] as number);
  roots.forEach((r, i) =>
    assert.ok(Math.abs(r - (roots[0] as number) - i * d) < 1e-5, `σ^(1/7) not linear at ${i}`),
  );
  const ts = karras.timesteps;
  assert.ok(
    ts.every((x, i) => Number.isInteger(x) && (i === 0 || x < (ts[i - 1] as number))),
    `${ts}`,
  );
  const expo = DPMSolverMultistepScheduler.fromConfig({ ...SD, use_exponential_sigmas: true });
  expo.setTimesteps(8);
  const logs = Array.from(expo.sigmas.subarray(0, 8), Math.log);
  logs.forEach((l, i) =>
    assert.ok(
      Math.abs(l - (logs[0] as number) - (i * ((logs[7] as number) - (logs[0] as number))) / 7) < 1e-5,
    ),
  );
  for (const spacing of [{ use_karras_sigmas: true }, { use_exponential_sigmas: true }]) {
    const extra = { ...spacing, use_lu_lambdas: false, solver_order: 2 };
    const [a, b] = [10, 20].map((n) => odeError(extra, n)) as [number, number];
    t.diagnostic(`${JSON.stringify(spacing)}: ${a.toExponential(2)} → ${b.toExponential(2)}`);
    assert.ok(a / b > 3 && b < 5e-2, `${JSON.stringify(spacing)}: errors ${a} → ${b}`);
  }
});

test('sigmaToT inverts the training σ table and interpolates in log σ', () => {
  const s = DPMSolverMultistepScheduler.fromConfig(SD);
  const logSigmas = s.trainSigmas.map((x) => Math.log(x));
  for (const t of [0, 1, 250, 777, 998, 999])
    assert.ok(Math.abs(sigmaToT(s.trainSigmas[t] as number, logSigmas) - t) < 1e-4);
  const mid = Math.exp(((logSigmas[400] as number) + (logSigmas[401] as number)) / 2);
  assert.ok(Math.abs(sigmaToT(mid, logSigmas) - 400.5) < 1e-6);
  assert.equal(sigmaToT(1e-9, logSigmas), 0);
  assert.equal(sigmaToT(1e9, logSigmas), 999);
});

test('SDE variants keep the marginal distribution: final std → sqrt(v(σ_min)) as steps increase', (t) => {
  const x = new SeededNormalNoise(7).normal(20000);
  for (const algorithm of ['sde-dpmsolver++', 'sde-dpmsolver']) {
    const gaps = [10, 40].map((n) => {
      const start = x.map((v) => v * Math.sqrt(marginalVariance(14.6146)));
      const { out, s } = solve({ algorithm_type: algorithm, solver_order: 2 }, n, start, 99);
      const std = Math.sqrt(out.reduce((acc, v) => acc + v * v, 0) / out.length);
      return Math.abs(std / Math.sqrt(marginalVariance(s.sigmas[n] as number)) - 1);
    }) as [number, number];
    t.diagnostic(
      `${algorithm}: relative std error ${gaps[0].toFixed(4)} (10 steps), ${gaps[1].toFixed(4)} (40 steps)`,
    );
    assert.ok(gaps[1] < 0.02, `${algorithm}: std off by ${gaps[1]} after 40 steps`);
  }
  const s = DPMSolverMultistepScheduler.fromConfig({ ...SD, algorithm_type: 'sde-dpmsolver++' });
  s.setTimesteps(5);
  assert.throws(() => s.step(new Float32Array(4), 999, new Float32Array(4)), /opts\.noise/);
});

test('multistep state: history resets with setTimesteps, and the step index starts from the timestep', () => {
  const s = DPMSolverMultistepScheduler.fromConfig(SD);
  const x = new SeededNormalNoise(2).normal(64);
  const run = (): Float32Array[] => {
    s.setTimesteps(6);
    let cur = x;
    return s.timesteps.map(
      (ts, i) => (cur = s.step(idealModel(cur, s.sigmas[i] as number, 'epsilon'), ts, cur).prevSample),
    );
  };
  const first = run();
  assert.deepEqual(run(), first);
  assert.throws(() => s.step(x, 0, x), /already taken/);
  s.setTimesteps(6);
  s.step(idealModel(x, s.sigmas[2] as number, 'epsilon'), s.timesteps[2] as number, x);
  assert.equal(s.stepIndex, 3);
});
