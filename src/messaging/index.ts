export {
  DeliveryEngine,
  type AgentAnswer,
  type DeliveryOutcome,
  type EngineOptions,
  type HandlerContext,
  type InProcessHandler,
  type InProcessReceiver,
  type MessageHandler,
} from './engine/engine.js';
export { EngineBus } from './engine/engine-bus.js';
export type {
  Answer,
  ConversationStep,
  DeliveryChange,
  DeliveryQueue,
  EngineStep,
  Outgoing,
  StepStore,
} from './engine/ports.js';
export type { MessagingConfig } from './messaging-config.js';
export type { BusReads, BusStats, DiscardResult, DiscardTarget, MessagingBus } from './bus-port.js';
export {
  checkReceiverLimits,
  duplicateResult,
  parseBody,
  replyTo,
  routeForPrincipal,
  sendScopeOf,
  submitBody,
  submission,
  undeployedReceiver,
} from './bus-rules.js';
export { retryDelay, RETRYABLE, UNDELIVERABLE } from './delivery-retries.js';
export { newConversation, touchConversation } from './conversation-rules.js';
export { ConversationEvents, type BusEvent } from './bus-events.js';
export { withFailed } from './protocols/index.js';
export { PLATFORM, type SendHints, type SubmitOptions, type SubmitResult } from './submission.js';
export {
  attemptErrorsOf,
  deliveryView,
  MAX_ATTEMPT_ERRORS,
  messageRow,
  type AttemptError,
  type ConversationFilter,
  type DeadLetterFilter,
  type DeliveryRow,
  type DeliveryView,
  type MessageFilter,
  type StoredMessage,
  type Page,
  type SubscriptionRow,
} from './rows.js';
export { Directory, type DirectoryEntry, type DirectoryEvent, type DirectoryQuery } from './directory.js';
export { eventVisibleTo, readsFor } from './scoped-reads.js';
export {
  MAX_BULK_DEAD_LETTERS,
  replayDeadLetter,
  discardDeadLetters,
  replayDeadLetters,
  selectDeadLetters,
  type BulkDiscardResult,
  type BulkReplayResult,
  type DeadLetterSelection,
  type ReplayedLetter,
} from './dead-letter-actions.js';
export { Router, type RouteDecision } from './router.js';
export { SqliteSignedSeen, type SignedSeen } from './signed-seen.js';
export {
  canonicalForm,
  MessageSigner,
  REPLAYED,
  SIGNATURE_INVALID,
  type SignatureCheck,
  type Signer,
} from './signature.js';
export { RoundRobin, LeastLoaded, createStrategy, type RoutingStrategy, type LoadView } from './strategy.js';
export { Dispatcher, type Delivery } from './dispatcher.js';
export { Linger } from './linger.js';
export { executorHandler } from './agent-handler.js';
export { sendMessageTool } from './send-message-tool.js';
export { parseMessage, type ParseMessageOptions } from './message-validate.js';
export { renderMessagePrompt, parseAnswer } from './step-prompt.js';
export {
  afterReply,
  atDeadline,
  chooseWinner,
  decide,
  endless,
  openCall,
  proposalValue,
  replyActs,
  selectionOf,
  type OpenCall,
  type StepEffects,
} from './protocols/index.js';
export { conversationBids, parseSelect, type ConversationBids, type Selection } from './protocols/index.js';
export {
  PERFORMATIVES,
  PROTOCOLS,
  normalizePerformative,
  expectsReply,
  executes,
  fanOut,
  type Performative,
  type Protocol,
} from './performatives.js';
export {
  newMessageId,
  newConversationId,
  contentText,
  contentSize,
  messageJson,
  replyAddress,
  type AclMessage,
  type Content,
  type ConversationId,
  type MessageId,
  type TraceContext,
} from './message.js';
export { TERMINAL_STATES, isTerminal, type Conversation, type ConversationState } from './conversation.js';
