import type { CallOutcome } from '../../audit/index.js';

/** How a tool call ends: the tool audit's outcomes (src/audit/tool-audit.ts). */
export { CALL_OUTCOMES, type CallOutcome } from '../../audit/index.js';

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
