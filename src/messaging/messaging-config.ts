import type { ServerConfig } from '../config/index.js';

/** The `[messaging]` section of caxton.toml, as the bus, its queue and its protocols read it. */
export type MessagingConfig = ServerConfig['messaging'];
