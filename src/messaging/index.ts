export {
  MessageBus,
  PLATFORM,
  type SendHints,
  type BusEvent,
  type BusOptions,
  type MessageHandler,
  type InProcessHandler,
  type InProcessReceiver,
  type HandlerContext,
  type AgentAnswer,
  type SubmitResult,
  type MessagingConfig,
} from './bus.js';
export type { DeliveryQueue, DeliveryQueueDeps, DeliveryQueueFactory, PendingDelivery } from './queue.js';
export { SqliteDeliveryQueue, sqliteQueue } from './sqlite-queue.js';
export { MESSAGING_MIGRATIONS, type DeliveryRow, type StoredMessage, type Page } from './store.js';
export { Directory, type DirectoryEntry, type DirectoryEvent, type DirectoryQuery } from './directory.js';
export { Router, type RouteDecision } from './router.js';
export { RoundRobin, LeastLoaded, createStrategy, type RoutingStrategy, type LoadView } from './strategy.js';
export { Dispatcher, type Delivery } from './dispatcher.js';
export { executorHandler } from './agent-handler.js';
export { sendMessageTool } from './send-message-tool.js';
export { parseMessage, type ParseMessageOptions } from './validate.js';
export { renderMessagePrompt, parseAnswer } from './prompt.js';
export { chooseWinner, proposalValue, selectionOf, createProtocolEngine, ProtocolEngine, type ConversationProtocol, type ProtocolContext } from './protocols/index.js';
export { PERFORMATIVES, PROTOCOLS, normalizePerformative, expectsReply, executes, fanOut, type Performative, type Protocol } from './performatives.js';
export { newMessageId, newConversationId, contentText, type AclMessage, type Content, type ConversationId, type MessageId, type TraceContext } from './message.js';
export { TERMINAL_STATES, isTerminal, type Conversation, type ConversationState } from './conversation.js';
