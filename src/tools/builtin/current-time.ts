import type { Tool } from '../types.js';

export const currentTimeTool: Tool = {
  name: 'current_time',
  idempotent: true,
  description: 'The current date and time, in ISO 8601 (UTC) and in an optional IANA time zone.',
  input_schema: {
    type: 'object',
    properties: { timezone: { type: 'string', description: 'IANA zone such as "Europe/Paris"; default UTC' } },
    additionalProperties: false,
  },
  async invoke(args) {
    const now = new Date();
    const tz = typeof args.timezone === 'string' && args.timezone ? args.timezone : 'UTC';
    try {
      const local = new Intl.DateTimeFormat('en-CA', { timeZone: tz, dateStyle: 'short', timeStyle: 'long' }).format(
        now,
      );
      return { content: JSON.stringify({ utc: now.toISOString(), timezone: tz, local }) };
    } catch {
      return { content: `current_time: unknown time zone "${tz}"`, is_error: true };
    }
  },
};
