// Scheduler factory: builds a scheduler from a diffusers `scheduler_config.json` object or folder.

import { readJsonLenient } from '../io/json.js';
import { joinPath as join } from '../io/loader.js';
import type { FileLoader } from '../io/loader.js';
import { DDIMScheduler } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';
import { DPMSolverMultistepScheduler } from './dpm_solver_multistep.js';
import type { Scheduler } from './scheduling_utils.js';

export { DDIMScheduler, parseDDIMConfig, type DDIMSchedulerConfig } from './ddim.js';
export { DDPMScheduler, parseDDPMConfig, type DDPMSchedulerConfig, type DDPMVarianceType } from './ddpm.js';
export {
  DPMSolverMultistepScheduler,
  parseDPMSolverMultistepConfig,
  type DPMAlgorithmType,
  type DPMSolverMultistepSchedulerConfig,
  type DPMSolverType,
  type FinalSigmasType,
} from './dpm_solver_multistep.js';
export {
  SeededNormalNoise,
  type BaseSchedulerConfig,
  type NoiseSource,
  type PredictionType,
  type Scheduler,
  type SchedulerStepResult,
  type StepOptions,
  type TimestepSpacing,
} from './scheduling_utils.js';
import { KinemaError } from '../errors.js';
export { checkFrameNoiseShared, mixFrameNoise } from './frame_noise.js';

/** Short names that select a scheduler class regardless of the config's `_class_name`. */
export type SchedulerName = 'ddim' | 'ddpm' | 'dpm';

const BY_CLASS_NAME: Readonly<Record<string, SchedulerName>> = {
  DDIMScheduler: 'ddim',
  DDPMScheduler: 'ddpm',
  DPMSolverMultistepScheduler: 'dpm',
};

/**
 * Build a scheduler from a config object (snake_case keys as in scheduler_config.json). The class comes from
 * `_class_name` unless `override` names one; as with diffusers' `from_config`, keys the chosen class does
 * not know are ignored, and options it knows but does not implement are rejected.
 */
export function schedulerFromConfig(config: Record<string, unknown>, override?: SchedulerName): Scheduler {
  let name = override;
  if (name === undefined) {
    const className = config['_class_name'];
    if (typeof className !== 'string') {
      throw new KinemaError(
        'SCHEDULER_CONFIG',
        'scheduler config has no "_class_name"; pass an override (ddim, ddpm or dpm)',
      );
    }
    name = BY_CLASS_NAME[className];
    if (name === undefined) {
      throw new KinemaError(
        'SCHEDULER_CONFIG',
        `unsupported scheduler class "${className}" (supported: ${Object.keys(BY_CLASS_NAME).join(', ')}); ` +
          'pass an override (ddim, ddpm or dpm) to reuse its noise schedule',
      );
    }
  }
  switch (name) {
    case 'ddim':
      return DDIMScheduler.fromConfig(config);
    case 'ddpm':
      return DDPMScheduler.fromConfig(config);
    case 'dpm':
      return DPMSolverMultistepScheduler.fromConfig(config);
    default:
      throw new KinemaError(
        'SCHEDULER_CONFIG',
        `unknown scheduler name "${String(name)}" (expected ddim, ddpm or dpm)`,
      );
  }
}

/** Load `<dir>/scheduler_config.json` (Python-style NaN/Infinity accepted) and build the scheduler. */
export async function loadScheduler(
  dir: string,
  override?: SchedulerName,
  loader?: FileLoader,
): Promise<Scheduler> {
  const path = join(dir, 'scheduler_config.json');
  const config = await readJsonLenient(path, loader);
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new KinemaError('SCHEDULER_CONFIG', `${path}: expected a JSON object`);
  }
  try {
    return schedulerFromConfig(config as Record<string, unknown>, override);
  } catch (err) {
    throw new KinemaError('SCHEDULER_CONFIG', `${path}: ${(err as Error).message}`);
  }
}
