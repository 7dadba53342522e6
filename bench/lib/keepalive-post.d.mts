import type { Agent } from 'node:http';

export function postKeptAlive(agent: Agent, url: URL, body: Buffer): Promise<void>;
