// The activations diffusers' `get_activation` names (config `act_fn`), as traced ops.
import type { Tensor } from '../../engine/tensor.js';
import * as op from '../../engine/ops.js';
import type { ActivationName } from './config.js';

/** Applies the named activation: silu/swish x·σ(x), exact (erf) gelu, relu, mish x·tanh(softplus(x)). */
export function activation(x: Tensor, name: ActivationName): Tensor {
  switch (name) {
    case 'silu':
    case 'swish':
      return op.silu(x);
    case 'gelu':
      return op.gelu(x, 'none');
    case 'relu':
      return op.relu(x);
    case 'mish':
      return op.mul(x, op.tanh(op.log(op.add(op.exp(x), 1))));
  }
}
