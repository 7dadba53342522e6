export {
  afterReply,
  atDeadline,
  decide,
  endless,
  openCall,
  replyActs,
  type OpenCall,
  type StepEffects,
} from './steps.js';
export { chooseWinner, proposalValue, selectionOf, type Selection, type SelectRule } from './selection.js';
