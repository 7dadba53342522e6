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
export { chooseWinner, proposalValue, selectionOf, type Selection, type SelectRule } from './selection.js';
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
  participantFailure,
  participantOnly,
  survivesParticipants,
  type FailedParticipant,
} from './participants.js';
