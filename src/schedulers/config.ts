// Typed reading of diffusers `scheduler_config.json` objects (snake_case keys) with diffusers' defaults.

import type {
  BaseSchedulerConfig,
  BetaSchedule,
  PredictionType,
  TimestepSpacing,
} from './scheduling_utils.js';
import { KinemaError } from '../errors.js';

/** Reads typed values from a raw config object; every error names the scheduler and the key. */
export class ConfigReader {
  constructor(
    readonly raw: Record<string, unknown>,
    readonly who: string,
  ) {}

  private value(key: string): unknown {
    return Object.prototype.hasOwnProperty.call(this.raw, key) ? this.raw[key] : undefined;
  }

  private fail(key: string, expected: string): never {
    throw new KinemaError(
      'SCHEDULER_CONFIG',
      `${this.who} config: "${key}" must be ${expected}, got ${JSON.stringify(this.value(key))}`,
    );
  }

  /** A number (NaN/±Infinity allowed, as Python's json writes them); missing → fallback. */
  number(key: string, fallback: number): number {
    const v = this.value(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'number') this.fail(key, 'a number');
    return v;
  }

  integer(key: string, fallback: number): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v)) this.fail(key, 'an integer');
    return v;
  }

  /** A boolean; missing or null → fallback (diffusers treats None like False for these flags). */
  boolean(key: string, fallback: boolean): boolean {
    const v = this.value(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  choice<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const v = this.value(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      this.fail(key, `one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
    }
    return v as T;
  }

  /** Like `choice`, but JSON null (Python None) is a legal value. */
  nullableChoice<T extends string>(key: string, allowed: readonly T[], fallback: T | null): T | null {
    return this.value(key) === null ? null : this.choice(key, allowed, fallback as T);
  }

  /** An array of numbers or null. */
  numberArrayOrNull(key: string): number[] | null {
    const v = this.value(key);
    if (v === undefined || v === null) return null;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number'))
      this.fail(key, 'an array of numbers or null');
    return v as number[];
  }

  /** Rejects a value of an option we do not implement, instead of silently ignoring it. */
  rejectUnless(key: string, supported: (v: unknown) => boolean, what: string): void {
    const v = this.value(key);
    if (v !== undefined && !supported(v)) {
      throw new KinemaError(
        'SCHEDULER_CONFIG',
        `${this.who}: ${key}=${JSON.stringify(v)} is not supported (${what})`,
      );
    }
  }
}

export const PREDICTION_TYPES: readonly PredictionType[] = ['epsilon', 'v_prediction', 'sample'];
export const TIMESTEP_SPACINGS: readonly TimestepSpacing[] = ['linspace', 'leading', 'trailing'];

/** Reads the options shared by DDIM, DDPM and DPM-Solver, with diffusers' defaults. */
export function readBaseConfig(
  r: ConfigReader,
  defaults: { timestepSpacing: TimestepSpacing; betaSchedules: readonly BetaSchedule[] },
): BaseSchedulerConfig {
  r.rejectUnless('thresholding', (v) => v === false || v === null, 'dynamic thresholding is not implemented');
  return {
    numTrainTimesteps: boundedTrainTimesteps(r),
    betaStart: r.number('beta_start', 0.0001),
    betaEnd: r.number('beta_end', 0.02),
    betaSchedule: r.choice('beta_schedule', defaults.betaSchedules, 'linear'),
    trainedBetas: r.numberArrayOrNull('trained_betas'),
    predictionType: r.choice('prediction_type', PREDICTION_TYPES, 'epsilon'),
    timestepSpacing: r.choice('timestep_spacing', TIMESTEP_SPACINGS, defaults.timestepSpacing),
    stepsOffset: r.integer('steps_offset', 0),
    rescaleBetasZeroSnr: r.boolean('rescale_betas_zero_snr', false),
  };
}

/**
 * Every schedule is a table per training timestep, so the count is bounded: published models use 1000
 * (a few use 4000); a corrupt 30 000 000 would mean seconds of work and hundreds of MiB before any step.
 */
const MAX_TRAIN_TIMESTEPS = 100_000;

function boundedTrainTimesteps(r: ConfigReader): number {
  const v = positiveInteger(r, 'num_train_timesteps', 1000);
  if (v > MAX_TRAIN_TIMESTEPS)
    throw new KinemaError(
      'SCHEDULER_CONFIG',
      `${r.who} config: "num_train_timesteps" is ${v}, more than ${MAX_TRAIN_TIMESTEPS} (published models use 1000)`,
    );
  return v;
}

function positiveInteger(r: ConfigReader, key: string, fallback: number): number {
  const v = r.integer(key, fallback);
  if (v < 1)
    throw new KinemaError(
      'SCHEDULER_CONFIG',
      `${r.who} config: "${key}" must be a positive integer, got ${v}`,
    );
  return v;
}
