// Multistep (second- and third-order) updates of DPM-Solver / DPM-Solver++, in diffusers' float32 arithmetic.

import type { DPMSolverMultistepSchedulerConfig } from './dpm_solver_multistep.js';
import { f32, sqrtF32, torchExpF32 } from './scheduling_utils.js';
import { KinemaError } from '../errors.js';

/** (α_t, σ_t) of the VP schedule for a given σ = sqrt((1 − ᾱ)/ᾱ), in float32. */
export function sigmaToAlphaSigmaT(sigma: number): { alphaT: number; sigmaT: number } {
  const alphaT = f32(1 / sqrtF32(f32(f32(sigma * sigma) + 1)));
  return { alphaT, sigmaT: f32(sigma * alphaT) };
}

/** λ = log α_t − log σ_t (+∞ at σ = 0). */
export function halfLogSnr(alphaT: number, sigmaT: number): number {
  return f32(f32(Math.log(alphaT)) - f32(Math.log(sigmaT)));
}

/**
 * Σ_k c_k · v_k evaluated left to right in float32, each product rounded (torch's `c0*v0 + c1*v1 - ...`;
 * a subtraction is passed as a negated coefficient, which is exact).
 */
export function linearCombination(terms: ReadonlyArray<readonly [number, Float32Array]>): Float32Array {
  const [first, ...rest] = terms;
  if (first === undefined) throw new KinemaError('SCHEDULER_BAD_CALL', 'linearCombination: no terms');
  const [c0, v0] = first;
  const out = new Float32Array(v0.length);
  for (let i = 0; i < out.length; i++) out[i] = c0 * (v0[i] as number);
  for (const [c, v] of rest) {
    if (v.length !== out.length)
      throw new KinemaError('SCHEDULER_BAD_CALL', 'linearCombination: length mismatch');
    for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) + f32(c * (v[i] as number));
  }
  return out;
}

/** c · (a − b), float32 (torch's `(1.0 / r) * (a - b)`). */
function scaledDifference(c: number, a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < out.length; i++) out[i] = c * f32((a[i] as number) - (b[i] as number));
  return out;
}

interface StepGeometry {
  alphaT: number;
  sigmaT: number;
  alphaS0: number;
  sigmaS0: number;
  /** h = λ_t − λ_{s0} and the previous step sizes h_0 = λ_{s0} − λ_{s1}, h_1 = λ_{s1} − λ_{s2}. */
  h: number;
  hPrev: number[];
}

/** α, σ at the target t = step i+1 and at s0 = step i; λ differences back to s_{order−1}. */
function stepGeometry(sigmas: Float32Array, i: number, order: number): StepGeometry {
  const t = sigmaToAlphaSigmaT(sigmas[i + 1] as number);
  const lambdas = [halfLogSnr(t.alphaT, t.sigmaT)];
  const s: { alphaT: number; sigmaT: number }[] = [];
  for (let k = 0; k < order; k++) {
    const sk = sigmaToAlphaSigmaT(sigmas[i - k] as number);
    s.push(sk);
    lambdas.push(halfLogSnr(sk.alphaT, sk.sigmaT));
  }
  const diffs = lambdas.slice(1).map((l, k) => f32((lambdas[k] as number) - l));
  const s0 = s[0] as { alphaT: number; sigmaT: number };
  return {
    alphaT: t.alphaT,
    sigmaT: t.sigmaT,
    alphaS0: s0.alphaT,
    sigmaS0: s0.sigmaT,
    h: diffs[0] as number,
    hPrev: diffs.slice(1),
  };
}

/**
 * Multistep second-order update from s0 = step i to t = step i+1 with history m0 (newest), m1:
 * r0 = h_0/h, D0 = m0, D1 = (m0 − m1)/r0.
 *   DPM-Solver++(2M) (DPM-Solver++ Alg. 2):  x_t = (σ_t/σ_s0) x − α_t(e^{−h} − 1) D0 − ½ α_t(e^{−h} − 1) D1
 *     heun variant:                          ... + α_t((e^{−h} − 1)/h + 1) D1
 *   DPM-Solver (multistep, eq. 3.8 form):    x_t = (α_t/α_s0) x − σ_t(e^{h} − 1) D0 − ½ σ_t(e^{h} − 1) D1
 *     heun variant:                          ... − σ_t((e^{h} − 1)/h − 1) D1
 *   SDE-DPM-Solver++(2M) / SDE-DPM-Solver add the noise term σ_t sqrt(1 − e^{−2h}) z (resp. sqrt(e^{2h} − 1)).
 */
export function dpmSecondOrderUpdate(
  c: DPMSolverMultistepSchedulerConfig,
  sigmas: Float32Array,
  i: number,
  history: Float32Array[],
  x: Float32Array,
  noise: Float32Array | null,
): Float32Array {
  const [m0, m1] = history as [Float32Array, Float32Array];
  const g = stepGeometry(sigmas, i, 2);
  const h = g.h;
  const r0 = f32((g.hPrev[0] as number) / h);
  const d0 = m0;
  const d1 = scaledDifference(f32(1 / r0), m0, m1);
  const heun = c.solverType === 'heun';
  const expH = torchExpF32(h);
  const expNegH = torchExpF32(-h);
  switch (c.algorithmType) {
    case 'dpmsolver++': {
      const c0 = f32(g.alphaT * f32(expNegH - 1));
      const c1 = heun ? f32(g.alphaT * f32(f32(f32(expNegH - 1) / h) + 1)) : -f32(0.5 * c0);
      return linearCombination([
        [f32(g.sigmaT / g.sigmaS0), x],
        [-c0, d0],
        [c1, d1],
      ]);
    }
    case 'dpmsolver': {
      const c0 = f32(g.sigmaT * f32(expH - 1));
      const c1 = heun ? f32(g.sigmaT * f32(f32(f32(expH - 1) / h) - 1)) : f32(0.5 * c0);
      return linearCombination([
        [f32(g.alphaT / g.alphaS0), x],
        [-c0, d0],
        [-c1, d1],
      ]);
    }
    case 'sde-dpmsolver++': {
      const expNeg2H = torchExpF32(-2 * h);
      const c0 = f32(g.alphaT * f32(1 - expNeg2H));
      const c1 = heun ? f32(g.alphaT * f32(f32(f32(1 - expNeg2H) / f32(-2 * h)) + 1)) : f32(0.5 * c0);
      return linearCombination([
        [f32(f32(g.sigmaT / g.sigmaS0) * expNegH), x],
        [c0, d0],
        [c1, d1],
        [f32(g.sigmaT * sqrtF32(f32(1 - expNeg2H))), noise as Float32Array],
      ]);
    }
    case 'sde-dpmsolver': {
      const c0 = f32(g.sigmaT * f32(expH - 1));
      const c1 = heun ? f32(2 * f32(g.sigmaT * f32(f32(f32(expH - 1) / h) - 1))) : c0;
      return linearCombination([
        [f32(g.alphaT / g.alphaS0), x],
        [-f32(2 * c0), d0],
        [-c1, d1],
        [f32(g.sigmaT * sqrtF32(f32(torchExpF32(2 * h) - 1))), noise as Float32Array],
      ]);
    }
  }
}

/**
 * Multistep third-order update with history m0 (newest), m1, m2 (DPM-Solver-3 / DPM-Solver++(3M)):
 * r0 = h_0/h, r1 = h_1/h, D1_0 = (m0 − m1)/r0, D1_1 = (m1 − m2)/r1,
 * D1 = D1_0 + r0/(r0 + r1) (D1_0 − D1_1), D2 = (D1_0 − D1_1)/(r0 + r1);
 *   DPM-Solver++: x_t = (σ_t/σ_s0) x − α_t φ1 D0 + α_t (φ1/h + 1) D1 − α_t ((φ1 + h)/h² − ½) D2, φ1 = e^{−h} − 1
 *   DPM-Solver:   x_t = (α_t/α_s0) x − σ_t ψ1 D0 − σ_t (ψ1/h − 1) D1 − σ_t ((ψ1 − h)/h² − ½) D2, ψ1 = e^{h} − 1
 *   SDE-DPM-Solver++ uses the e^{−2h} analogues plus the noise term.
 */
export function dpmThirdOrderUpdate(
  c: DPMSolverMultistepSchedulerConfig,
  sigmas: Float32Array,
  i: number,
  history: Float32Array[],
  x: Float32Array,
  noise: Float32Array | null,
): Float32Array {
  const [m0, m1, m2] = history as [Float32Array, Float32Array, Float32Array];
  const g = stepGeometry(sigmas, i, 3);
  const h = g.h;
  const r0 = f32((g.hPrev[0] as number) / h);
  const r1 = f32((g.hPrev[1] as number) / h);
  const d10 = scaledDifference(f32(1 / r0), m0, m1);
  const d11 = scaledDifference(f32(1 / r1), m1, m2);
  const r01 = f32(r0 + r1);
  const wD1 = f32(r0 / r01);
  const wD2 = f32(1 / r01);
  const d1 = new Float32Array(m0.length);
  const d2 = new Float32Array(m0.length);
  for (let k = 0; k < d1.length; k++) {
    const diff = f32((d10[k] as number) - (d11[k] as number));
    d1[k] = (d10[k] as number) + f32(wD1 * diff);
    d2[k] = wD2 * diff;
  }
  const h2 = f32(h * h);
  if (c.algorithmType === 'dpmsolver++') {
    const phi1 = f32(torchExpF32(-h) - 1);
    return linearCombination([
      [f32(g.sigmaT / g.sigmaS0), x],
      [-f32(g.alphaT * phi1), m0],
      [f32(g.alphaT * f32(f32(phi1 / h) + 1)), d1],
      [-f32(g.alphaT * f32(f32(f32(phi1 + h) / h2) - 0.5)), d2],
    ]);
  }
  if (c.algorithmType === 'dpmsolver') {
    const psi1 = f32(torchExpF32(h) - 1);
    return linearCombination([
      [f32(g.alphaT / g.alphaS0), x],
      [-f32(g.sigmaT * psi1), m0],
      [-f32(g.sigmaT * f32(f32(psi1 / h) - 1)), d1],
      [-f32(g.sigmaT * f32(f32(f32(psi1 - h) / h2) - 0.5)), d2],
    ]);
  }
  if (c.algorithmType === 'sde-dpmsolver++') {
    const expNegH = torchExpF32(-h);
    const one = f32(1 - torchExpF32(-2 * h));
    const twoH = f32(2 * h);
    return linearCombination([
      [f32(f32(g.sigmaT / g.sigmaS0) * expNegH), x],
      [f32(g.alphaT * one), m0],
      [f32(g.alphaT * f32(f32(one / -twoH) + 1)), d1],
      [f32(g.alphaT * f32(f32(f32(one - twoH) / f32(twoH * twoH)) - 0.5)), d2],
      [f32(g.sigmaT * sqrtF32(one)), noise as Float32Array],
    ]);
  }
  throw new KinemaError(
    'SCHEDULER_BAD_CALL',
    `DPMSolverMultistepScheduler: third-order update is not defined for "${c.algorithmType}"`,
  );
}
