export { PERMISSIONS, ROLES, ROLE_PERMISSIONS, ROLE_SUMMARY, isRole, type Permission, type Role } from './permissions.js';
export { can, globMatch, inScope, senderOf, principalScopeSchema, type Principal, type PrincipalScope } from './principal.js';
export type { Access } from './access.js';
export { ApiKeyStore, KEY_MIGRATIONS, KEY_PREFIX, unauthenticated, type ApiKeyInfo, type CreateKey, type KeyLimits } from './keys.js';
export { ROUTE_POLICIES, policyFor } from './route-policies.js';
export { installAuth, assertAgentAllowed, bearerOf, hostName, LOCAL_PRINCIPAL, type AuthPluginOptions, type Authenticators, type RouteAccess } from './plugin.js';
export { ADMIN_KEY_FILE, bootstrapAdminKey, caxtonHome, localServerKey, readKeyFile, writeRunRecord, type RunRecord } from './local.js';
