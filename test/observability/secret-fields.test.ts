/**
 * Secret fields in log lines: the value of a key named api_key, token, password, authorization
 * or x-api-key is written as "***" wherever it sits in the line and whatever it holds, and a
 * message that only mentions such a key is left as it is. Through a real pino logger.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, SECRET_FIELDS } from '../../src/observability/index.js';
import { redactSecretFields } from '../../src/observability/logger.js';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, stream };
}

describe('secret fields in log lines', () => {
  it('censors their values at any depth, in bindings too, whatever the value holds', async () => {
    const { lines, stream } = capture();
    const log = createLogger('info', stream);
    log.child({ token: 'bound-secret-1' }).info(
      {
        provider: { api_key: 'sk-secret-2', nested: { deeper: { password: { a: ['x', { b: '}"' }] } } } },
        headers: { authorization: 'Bearer secret-3', 'x-api-key': 'secret-4' },
        list: [{ apiKey: 12345 }, { token: null }],
      },
      'configured',
    );
    await new Promise((r) => setImmediate(r));
    const line = lines.join('');
    for (const s of ['bound-secret-1', 'sk-secret-2', 'secret-3', 'secret-4', '12345', '}\\"'])
      expect(line).not.toContain(s);
    const parsed = JSON.parse(line) as {
      token: unknown;
      provider: { api_key: unknown; nested: { deeper: { password: unknown } } };
      headers: unknown;
      list: unknown;
      msg: string;
    };
    expect(parsed.token).toBe('***');
    expect(parsed.provider.api_key).toBe('***');
    expect(parsed.provider.nested.deeper.password).toBe('***');
    expect(parsed.headers).toEqual({ authorization: '***', 'x-api-key': '***' });
    expect(parsed.list).toEqual([{ apiKey: '***' }, { token: '***' }]);
    expect(parsed.msg).toBe('configured');
  });

  it('leaves a line without such a key, and a message mentioning one, as they are', () => {
    const plain = '{"level":"info","tokens":3,"msg":"the \\"token\\": field, {\\"token\\":1}"}\n';
    expect(redactSecretFields(plain)).toBe(plain);
    expect(SECRET_FIELDS).toContain('authorization');
  });
});
