export {
  PERMISSIONS,
  ROLES,
  ROLE_PERMISSIONS,
  ROLE_SUMMARY,
  RUN_PERMISSIONS,
  isRole,
  type Permission,
  type Role,
} from './permissions.js';
export {
  agentOfRef,
  can,
  globMatch,
  inScope,
  senderOf,
  principalScopeSchema,
  type Principal,
  type PrincipalScope,
} from './principal.js';
export type { Access } from './route-access.js';
export {
  NON_AGENT_PARTIES,
  agentFilterOf,
  agentScopeSql,
  agentVisible,
  agentsVisibleTo,
  capabilitiesVisibleTo,
  conversationScopeSql,
  conversationVisible,
  isAgentParty,
  logLinesVisibleTo,
  messageScopeSql,
  messageVisible,
  partiesVisible,
  readScopeOf,
  type MessageParties,
} from './scope-read.js';
export {
  ApiKeyStore,
  KEY_MIGRATIONS,
  KEY_NAME_RE,
  KEY_PREFIX,
  sameKeyRecord,
  unauthenticated,
  type ApiKeyInfo,
  type ApiKeyRecord,
  type ApplyRemoteResult,
  type CreateKey,
  type KeyLimits,
} from './keys.js';
export { ROUTE_POLICIES, policyFor } from './route-policies.js';
export {
  installAuth,
  assertAgentAllowed,
  hostAllowedBy,
  bearerOf,
  hostName,
  LOCAL_PRINCIPAL,
  type AuthPluginOptions,
  type Authenticators,
  type RouteAccess,
} from './plugin.js';
export {
  ADMIN_KEY_FILE,
  bootstrapAdminKey,
  bootstrapKeyName,
  caxtonHome,
  localServerKey,
  readKeyFile,
  writeRunRecord,
  type RunRecord,
} from './local-auth.js';
export { createJwtAuthenticator, MAX_TOKEN_CHARS, type JwtAuthenticator, type JwtAuthenticatorOptions } from './jwt.js';
export { jwtConfigSchema, ssoConfigSchema, type JwtConfig, type JwtConfigInput, type SsoConfig } from './jwt-config.js';
export { SsoClient, SSO_CALLBACK_PATH, type SsoEndpoints } from './sso.js';
export {
  clientCertMappingSchema,
  clientCertMappingsSchema,
  principalFromCertificate,
  principalFromSocket,
  parseSubjectAltName,
  type ClientCertMapping,
} from './cert.js';
export {
  PrincipalLimiter,
  limitedError,
  retryAfterSeconds,
  type LimitDenied,
  type LimitUsage,
  type ExecutionSlot,
} from './caller-limits.js';
export {
  authLimitsConfigSchema,
  limitSetSchema,
  principalLimits,
  agentLimitsLookup,
  type AuthLimitsConfig,
  type LimitSet,
} from './limits-config.js';
export { metricsGuard } from './metrics-guard.js';
export { admitCall, streamHolder, type StreamHolder } from './admit.js';
export { checkSend, unknownPrincipal, type SendScope } from './scope-send.js';
export { PrincipalDirectory, REMEMBERED_PRINCIPALS, type ActingPrincipals } from './acting.js';
export { AnonymousLimiter, anonymousLimitedError, type AnonymousLimitOptions } from './anonymous-limit.js';
export { assertDeployAllowed, deployActor, type DeployTarget } from './scope-deploy.js';
export {
  agentOwner,
  NODE_OWNER,
  OUTSIDE_NODE,
  principalOwner,
  SIGNING_KEY_MIGRATIONS,
  SigningKeyStore,
  signingKeyInfo,
  type ActiveSigningKey,
  type SigningKeyInfo,
  type SigningKeyRecord,
  type VerifyingKey,
} from './signing-keys.js';
export { SigningAnchor, type EndorsedFields } from './signing-anchor.js';
