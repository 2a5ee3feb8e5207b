// Commander argument parsers shared by the commands and the npm scripts: each names its flag in the error.
import { InvalidArgumentError } from 'commander';

/** A parser of numbers that `ok` accepts; an empty value or any other is an error "<name> must be <what>". */
function numeric(name: string, ok: (n: number) => boolean, what: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !ok(n)) throw new InvalidArgumentError(`${name} must be ${what}, got '${v}'`);
    return n;
  };
}

/** An integer ≥ min. */
export const intOption = (name: string, min: number): ((v: string) => number) =>
  numeric(name, (n) => Number.isInteger(n) && n >= min, `an integer ≥ ${min}`);

/** A finite number. */
export const numberOption = (name: string): ((v: string) => number) =>
  numeric(name, Number.isFinite, 'a number');

/** A finite number > 0. */
export const positiveOption = (name: string): ((v: string) => number) =>
  numeric(name, (n) => Number.isFinite(n) && n > 0, 'a positive number');

/** A number in [0, 1). */
export const fractionOption = (name: string): ((v: string) => number) =>
  numeric(name, (n) => n >= 0 && n < 1, 'a number in [0, 1)');

/** A number in (0, 1]. */
export const positiveUnitOption = (name: string): ((v: string) => number) =>
  numeric(name, (n) => n > 0 && n <= 1, 'a number in (0, 1]');

/** A number in [0, 1]. */
export const unitOption = (name: string): ((v: string) => number) =>
  numeric(name, (n) => n >= 0 && n <= 1, 'a number in [0, 1]');
