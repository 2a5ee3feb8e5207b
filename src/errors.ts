// The one error base every Kinema error extends: a stable machine-readable `code` (listed in docs/errors.md,
// with its cause and what to do) and a message that names the file, field or value at fault. Surfaces map it:
// the CLI prints `kinema: <message> [<code>]` and exits non-zero, the HTTP service answers 4xx with the code.
export class KinemaError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KinemaError';
    this.code = code;
  }
}

/** True for any KinemaError (or subclass), including ones from another copy of this module. */
export function isKinemaError(err: unknown): err is KinemaError {
  return (
    err instanceof KinemaError ||
    (err instanceof Error &&
      typeof (err as { code?: unknown }).code === 'string' &&
      (err as { name: string }).name.endsWith('Error') &&
      'code' in err)
  );
}
