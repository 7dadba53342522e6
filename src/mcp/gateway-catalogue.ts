/**
 * What a mounted MCP server marked `gateway = true` offers beyond its tools: its prompts, its
 * resources and resource templates, and whether it completes arguments. Caxton's /mcp passes them
 * through (gateway.ts). Read once at connection and again when the server announces a change
 * (`notifications/prompts/list_changed`, `notifications/resources/list_changed`), so listing at
 * /mcp costs no round trip to the server.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import {
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  type Prompt,
  type Resource,
  type ResourceTemplate,
} from '@modelcontextprotocol/sdk/types.js';

/** Bounds what is kept of one server's lists (a server that pages forever cannot fill memory). */
export const GATEWAY_LIST_LIMIT = 10_000;

export interface GatewayCatalogue {
  prompts: Prompt[];
  resources: Resource[];
  templates: ResourceTemplate[];
  /** The server declared `completions`: completion/complete for its prompts and templates goes to it. */
  completions: boolean;
}

export const EMPTY_CATALOGUE: GatewayCatalogue = { prompts: [], resources: [], templates: [], completions: false };

/** Follows a paged list to its end (or GATEWAY_LIST_LIMIT items). */
async function all<T>(
  page: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor?: string | undefined }>,
): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | undefined;
  do {
    const p = await page(cursor);
    out.push(...p.items);
    cursor = p.nextCursor;
  } while (cursor !== undefined && out.length < GATEWAY_LIST_LIMIT);
  return out.slice(0, GATEWAY_LIST_LIMIT);
}

const params = (cursor: string | undefined) => (cursor !== undefined ? { cursor } : undefined);

/** The server's prompts, resources and templates, as far as its capabilities declare them. */
export async function readCatalogue(client: Client, timeout: number): Promise<GatewayCatalogue> {
  const caps = client.getServerCapabilities() ?? {};
  const opts = { timeout };
  const prompts = caps.prompts
    ? await all(async (c) => {
        const r = await client.listPrompts(params(c), opts);
        return { items: r.prompts, nextCursor: r.nextCursor };
      })
    : [];
  const resources = caps.resources
    ? await all(async (c) => {
        const r = await client.listResources(params(c), opts);
        return { items: r.resources, nextCursor: r.nextCursor };
      })
    : [];
  const templates = caps.resources
    ? await all(async (c) => {
        const r = await client.listResourceTemplates(params(c), opts);
        return { items: r.resourceTemplates, nextCursor: r.nextCursor };
      })
    : [];
  return { prompts, resources, templates, completions: caps.completions !== undefined };
}

/** One gateway server's catalogue as last read: read at connection, again on each announced change. */
export class CatalogueFollower {
  #catalogue: GatewayCatalogue = EMPTY_CATALOGUE;

  constructor(
    private readonly timeout: () => number,
    private readonly onChange: () => void,
    private readonly onError: (e: unknown) => void,
  ) {}

  get catalogue(): GatewayCatalogue {
    return this.#catalogue;
  }

  /** Rereads the lists when `client` announces a change, while `current()` holds. */
  follow(client: Client, current: () => boolean): void {
    const reread = () => {
      if (!current()) return;
      readCatalogue(client, this.timeout()).then((c) => {
        if (!current()) return;
        this.#catalogue = c;
        this.onChange();
      }, this.onError);
    };
    client.setNotificationHandler(PromptListChangedNotificationSchema, reread);
    client.setNotificationHandler(ResourceListChangedNotificationSchema, reread);
  }

  /** Reads the lists of a client just connected. */
  async read(client: Client): Promise<void> {
    this.#catalogue = await readCatalogue(client, this.timeout());
  }
}
