// Plain JavaScript, so that a script run without tsx can share it with the
// TypeScript suites.
import { request } from 'node:http';

/**
 * One POST on a kept-alive `node:http` connection, the body read and dropped: the sequential
 * client. fetch (undici) allocates a Request, a Response, Headers and web streams per request;
 * its own young-generation pauses showed up in the tail measured for both servers.
 */
export function postKeptAlive(agent, url, body) {
  return new Promise((resolve, reject) => {
    const r = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
      },
      (res) => {
        res.on('data', () => {});
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`POST ${url.href} answered ${res.statusCode}`)),
        );
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}
