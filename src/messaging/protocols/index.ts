export {
  afterParticipantFailed,
  afterReply,
  atDeadline,
  callsForProposals,
  decide,
  endless,
  openCall,
  replyActs,
  type OpenCall,
  type StepEffects,
} from './steps.js';
export {
  chooseWinner,
  parseSelect,
  proposalValue,
  rankProposals,
  readValue,
  ruleText,
  selectionOf,
  type ReadValue,
  type Selection,
  type SelectKey,
  type SelectRule,
} from './selection.js';
export { conversationBids, type BidRound, type BidValue, type BidView, type ConversationBids } from './bids.js';
export {
  auctionNotice,
  auctionStart,
  isRoundProtocol,
  ROUND_PROTOCOLS,
  roundTermIssues,
  type RoundProtocol,
} from './rounds.js';
export {
  failedParticipants,
  withFailed,
  participantFailure,
  participantOnly,
  survivesParticipants,
  type FailedParticipant,
} from './participants.js';
