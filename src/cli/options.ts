// Commander argument parsers shared by the commands and the npm scripts: each names its flag in the error.
import { InvalidArgumentError } from 'commander';

/** An integer ≥ min. */
export function intOption(name: string, min: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}, got '${v}'`);
    return n;
  };
}

/** A finite number. */
export function numberOption(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n))
      throw new InvalidArgumentError(`${name} must be a number, got '${v}'`);
    return n;
  };
}

/** A finite number > 0. */
export function positiveOption(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n <= 0)
      throw new InvalidArgumentError(`${name} must be a positive number, got '${v}'`);
    return n;
  };
}

/** A number in [0, 1). */
export function fractionOption(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !(n >= 0 && n < 1))
      throw new InvalidArgumentError(`${name} must be a number in [0, 1), got '${v}'`);
    return n;
  };
}

/** A number in [0, 1]. */
export function unitOption(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !(n >= 0 && n <= 1))
      throw new InvalidArgumentError(`${name} must be a number in [0, 1], got '${v}'`);
    return n;
  };
}
