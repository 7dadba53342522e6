import { ContractNetProtocol } from './contract-net.js';
import { ProtocolEngine } from './engine.js';
import { PlainProtocol } from './plain.js';
import type { ProtocolContext } from './protocol.js';
import { QueryProtocol } from './query.js';
import { RequestProtocol } from './request.js';
import { SubscribeProtocol } from './subscribe.js';

export { ProtocolEngine } from './engine.js';
export { defaultReplyActs, isNegative, type ConversationProtocol, type ProtocolContext } from './protocol.js';
export { ContractNetProtocol } from './contract-net.js';
export { PlainProtocol } from './plain.js';
export { QueryProtocol } from './query.js';
export { RequestProtocol } from './request.js';
export { SubscribeProtocol } from './subscribe.js';
export { chooseWinner, proposalValue, selectionOf, type Selection, type SelectRule } from './selection.js';

/** The protocols the platform runs: FIPA-Request, FIPA-Query, Contract Net, Subscribe, and conversations without one. */
export function createProtocolEngine(ctx: ProtocolContext): ProtocolEngine {
  return new ProtocolEngine([new RequestProtocol(ctx), new QueryProtocol(ctx), new ContractNetProtocol(ctx), new SubscribeProtocol(ctx), new PlainProtocol(ctx)]);
}
