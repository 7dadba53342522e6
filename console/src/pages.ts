/**
 * Every page of the console: adding one is a file in pages/ and an entry here. `routes` are the
 * paths it answers (below /ui); `permission` hides its nav entry from a principal whose role
 * lacks it (and explains the refusal when the URL is opened anyway); `load` imports the page's
 * own chunk, so the initial script stays small.
 */
import type { ComponentType } from 'preact';

export interface PageProps {
  /** The route's parameters (":name" → params.name), decoded. */
  params: Record<string, string>;
  query: URLSearchParams;
}

export interface PageDef {
  id: string;
  /** The nav label and the document title. */
  title: string;
  routes: readonly string[];
  /** The permission the page needs (src/auth/permissions.ts). */
  permission?: string;
  /** false: reachable by URL but not in the nav. */
  nav?: boolean;
  load: () => Promise<{ default: ComponentType<PageProps> }>;
}

export const PAGES: readonly PageDef[] = [
  {
    id: 'overview',
    title: 'Overview',
    routes: ['/'],
    permission: 'observe:read',
    load: () => import('./pages/overview'),
  },
  {
    id: 'agents',
    title: 'Agents',
    routes: ['/agents', '/agents/:name', '/agents/:name/:tab'],
    permission: 'agents:read',
    load: () => import('./pages/agents'),
  },
  {
    id: 'runs',
    title: 'Runs',
    routes: ['/runs', '/runs/:id'],
    permission: 'observe:read',
    load: () => import('./pages/runs'),
  },
  {
    id: 'conversations',
    title: 'Conversations',
    routes: ['/conversations', '/conversations/:id'],
    permission: 'messages:read',
    load: () => import('./pages/conversations'),
  },
  {
    id: 'messages',
    title: 'Messages',
    routes: ['/messages', '/messages/:id'],
    permission: 'messages:read',
    load: () => import('./pages/messages'),
  },
  {
    id: 'send',
    title: 'Send',
    routes: ['/send'],
    permission: 'messages:send',
    load: () => import('./pages/send'),
  },
  {
    id: 'dead-letters',
    title: 'Dead letters',
    routes: ['/dead-letters', '/dead-letters/:id'],
    permission: 'messages:read',
    load: () => import('./pages/dead-letters'),
  },
  {
    id: 'tools',
    title: 'Tools',
    routes: ['/tools', '/tools/:name'],
    permission: 'tools:read',
    load: () => import('./pages/tools'),
  },
  {
    id: 'memory',
    title: 'Memory',
    routes: ['/memory', '/memory/entities/:name'],
    permission: 'memory:read',
    load: () => import('./pages/memory'),
  },
  { id: 'logs', title: 'Logs', routes: ['/logs'], permission: 'observe:read', load: () => import('./pages/logs') },
  {
    id: 'events',
    title: 'Events',
    routes: ['/events'],
    permission: 'observe:read',
    load: () => import('./pages/events'),
  },
  { id: 'audit', title: 'Audit', routes: ['/audit'], permission: 'audit:read', load: () => import('./pages/audit') },
  { id: 'keys', title: 'API keys', routes: ['/keys'], permission: 'keys:manage', load: () => import('./pages/keys') },
];
