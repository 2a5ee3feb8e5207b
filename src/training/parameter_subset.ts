// The trainable part of a partly frozen model (an adapter, a new decoder layer): a module view that declares
// only the parameters `keep` accepts, so the trainer initialises, validates and checkpoints just those.
import { Module } from '../nn/module.js';
import type { ParamSpec } from '../nn/module.js';

export class ParameterSubset extends Module {
  constructor(
    private readonly base: Module,
    private readonly keep: (name: string) => boolean,
  ) {
    super();
  }
  override namedParameters(prefix = ''): Map<string, ParamSpec> {
    const out = new Map<string, ParamSpec>();
    for (const [k, s] of this.base.namedParameters(prefix)) if (this.keep(k)) out.set(k, s);
    return out;
  }
}
