/**
 * How a tool call ends. `ok` is a success; every other value is a failure the audit log records
 * and the model sees as an error result.
 */
export type CallOutcome =
  | 'ok'
  /** The tool ran and reported an error itself (non-zero return, `error_set`). */
  | 'error'
  | 'invalid_input'
  | 'input_too_large'
  | 'output_too_large'
  | 'fuel_exhausted'
  | 'timeout'
  | 'out_of_memory'
  | 'stack_overflow'
  /** A host function refused: host, path or capability not granted. */
  | 'denied'
  | 'io_error'
  | 'http_error'
  /** Any other trap (unreachable, out-of-bounds access, abort). */
  | 'trap'
  /** Never run: the calling agent's `tools` allowlist does not include the tool (ToolRegistry). */
  | 'not_allowed';

export const CALL_OUTCOMES: readonly CallOutcome[] = [
  'ok',
  'error',
  'invalid_input',
  'input_too_large',
  'output_too_large',
  'fuel_exhausted',
  'timeout',
  'out_of_memory',
  'stack_overflow',
  'denied',
  'io_error',
  'http_error',
  'trap',
  'not_allowed',
];

/** Thrown by a host function to end the guest's call with `kind`; the sandbox turns it into a failed outcome. */
export class HostTrap extends Error {
  constructor(
    readonly kind: Exclude<CallOutcome, 'ok'>,
    message: string,
  ) {
    super(message);
    this.name = 'HostTrap';
  }
}
