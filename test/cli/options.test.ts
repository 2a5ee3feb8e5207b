// The shared argument parsers: accepted values come back as numbers, rejected ones name the flag and the value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from 'commander';
import {
  fractionOption,
  intOption,
  numberOption,
  positiveOption,
  positiveUnitOption,
  unitOption,
} from '../../src/cli/options.js';

test('option parsers accept what they promise and reject the rest, naming the flag', () => {
  assert.equal(intOption('--n', 0)('0'), 0);
  assert.equal(intOption('--n', 1)('12'), 12);
  for (const bad of ['0', '1.5', '', ' ', 'x'])
    assert.throws(
      () => intOption('--n', 1)(bad),
      (e: Error) => e instanceof InvalidArgumentError && /--n must be an integer ≥ 1, got '/.test(e.message),
    );
  assert.equal(numberOption('--g')('-2.5'), -2.5);
  for (const bad of ['', 'Infinity', 'abc'])
    assert.throws(() => numberOption('--g')(bad), /--g must be a number, got '/);
  assert.equal(positiveOption('--lr')('5e-4'), 5e-4);
  for (const bad of ['0', '-1', '', 'NaN'])
    assert.throws(() => positiveOption('--lr')(bad), /--lr must be a positive number, got '/);
  assert.equal(fractionOption('--r')('0'), 0);
  assert.equal(fractionOption('--r')('0.5'), 0.5);
  for (const bad of ['1', '-0.1', '', 'half'])
    assert.throws(() => fractionOption('--r')(bad), /--r must be a number in \[0, 1\), got '/);
  assert.equal(unitOption('--u')('1'), 1);
  assert.equal(unitOption('--u')('0.7'), 0.7);
  for (const bad of ['1.01', '-0.1', '', 'x'])
    assert.throws(() => unitOption('--u')(bad), /--u must be a number in \[0, 1\], got '/);
  assert.equal(positiveUnitOption('--k')('1'), 1);
  assert.equal(positiveUnitOption('--k')('0.25'), 0.25);
  for (const bad of ['0', '1.5', '-0.25', '', 'x'])
    assert.throws(() => positiveUnitOption('--k')(bad), /--k must be a number in \(0, 1\], got '/);
});
