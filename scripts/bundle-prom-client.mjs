/**
 * prom-client's entry requires its Pushgateway as it loads, and the Pushgateway requires Node's
 * zlib, http and https: compiling zlib alone is about 14 ms of every `caxton serve` start, for a
 * class Caxton never uses (Prometheus scrapes /metrics). In the bundle the entry's `Pushgateway`
 * export is a getter that requires it when read: the same export, loaded only by a reader.
 *
 * The replacement names the exact text it replaces; a prom-client whose entry differs fails the
 * build, so an upgrade is looked at rather than silently left unpatched.
 */
import { readFileSync } from 'node:fs';

const EAGER = "exports.Pushgateway = require('./lib/pushgateway');";
const LAZY =
  "Object.defineProperty(exports, 'Pushgateway', { enumerable: true, get: () => require('./lib/pushgateway') });";

export const promClientPlugin = {
  name: 'caxton-prom-client-lazy-pushgateway',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]prom-client[\\/]index\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes(EAGER))
        throw new Error('prom-client index.js: the Pushgateway export was not found (a new version?)');
      return { contents: text.replace(EAGER, LAZY), loader: 'js' };
    });
  },
};
