import type { MessagingBus } from '../../messaging/index.js';
import type { Logger } from '../../observability/index.js';
import type { Component } from './component.js';

/**
 * Starts delivering: messages accepted before the last stop run again. Started after every
 * component that registers host tools (an agent run by a redelivered message finds all its
 * tools) and closed before them: deliveries still running are abandoned, not lost (they stay
 * pending and run again after a restart, or on another node of a cluster).
 */
export async function startDelivery(opts: { bus: MessagingBus; logger: Logger }): Promise<Component> {
  const recovered = await opts.bus.start();
  if (recovered.redelivering > 0) opts.logger.info(recovered, 'redelivering messages accepted before the last stop');
  return { name: 'message delivery', close: () => opts.bus.close() };
}
