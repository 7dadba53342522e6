/**
 * find-my-way (fastify's router) compiles small functions with `new Function` as routes are
 * added: a prefix matcher per static node, a params-object factory and a constraint matcher per
 * handler. With the API's routes that is about 630 compilations per start, each parsed and
 * compiled by V8 from scratch (code made by `new Function` is not in the code cache of ADR 0073).
 * In the bundle they are closures over the same data, with the same results: the routes are
 * found exactly as the published code finds them, and a start compiles none of them.
 *
 * Each replacement names the exact text it replaces (or its first and last lines); a find-my-way whose text differs fails the
 * build, so an upgrade is looked at rather than silently left unpatched.
 */
import { readFileSync } from 'node:fs';

const PATCHES = {
  'lib/node.js': [
    [
      `  const lines = []
  for (let i = 1; i < prefix.length; i++) {
    const charCode = prefix.charCodeAt(i)
    lines.push(\`path.charCodeAt(i + \${i}) === \${charCode}\`)
  }
  return new Function('path', 'i', \`'use strict'\\nreturn \${lines.join(' && ')}\`) // eslint-disable-line`,
      `  return function matchPrefix (path, i) {
    for (let j = 1; j < prefix.length; j++) {
      if (path.charCodeAt(i + j) !== prefix.charCodeAt(j)) return false
    }
    return true
  }`,
    ],
  ],
  'lib/handler-storage.js': [
    [
      `    const fnBody = ["'use strict'"]

    // Parameter values arrive by position: the first four as arguments and
    // any further ones in the extraParams array. This mirrors how the
    // router's find() collects them without allocating an array.
    fnBody.push('const fn = function _createParamsObject (param0, param1, param2, param3, extraParams) {')

    fnBody.push('const params = new NullObject()')
    for (let i = 0; i < params.length; i++) {
      const value = i < 4 ? \`param\${i}\` : \`extraParams[\${i - 4}]\`
      fnBody.push(\`params[\${JSON.stringify(params[i])}] = \${value}\`)
    }
    fnBody.push('return params')
    fnBody.push('}')

    fnBody.push('return fn')

    return new Function('NullObject', fnBody.join('\\n'))(NullObject)  // eslint-disable-line`,
      `    // Parameter values arrive by position: the first four as arguments and
    // any further ones in the extraParams array.
    const names = params.slice()
    return function _createParamsObject (param0, param1, param2, param3, extraParams) {
      const out = new NullObject()
      for (let i = 0; i < names.length; i++) {
        out[names[i]] = i === 0 ? param0 : i === 1 ? param1 : i === 2 ? param2 : i === 3 ? param3 : extraParams[i - 4]
      }
      return out
    }`,
    ],
    [
      `    const lines = ["'use strict'"]
    lines.push(\`
    let candidates = \${(1 << this.handlers.length) - 1}`,
      `    this._getHandlerMatchingConstraints = new Function('derivedConstraints', lines.join('\\n')) // eslint-disable-line`,
      `    const all = (1 << this.handlers.length) - 1
    const checks = this.constraints.map((constraint) => ({
      constraint,
      mask: this._constrainedIndexBitmask(constraint),
      mustMatch: Boolean(constrainer.strategies[constraint].mustMatchWhenDerived)
    }))
    // Derived "must match" constraints this node's handlers do not have: such a request matches none of them.
    const absent = []
    for (const constraint in constrainer.strategies) {
      if (!Object.hasOwn(constrainer.strategies, constraint)) continue
      if (constrainer.strategies[constraint].mustMatchWhenDerived && !this.constraints.includes(constraint)) absent.push(constraint)
    }
    this._getHandlerMatchingConstraints = function (derivedConstraints) {
      let candidates = all
      for (const c of checks) {
        const value = derivedConstraints[c.constraint]
        if (value === undefined) {
          candidates &= c.mask
        } else {
          const matches = this.constrainedHandlerStores[c.constraint].get(value) || 0
          candidates &= c.mustMatch ? matches : (matches | c.mask)
        }
        if (candidates === 0) return null
      }
      for (const constraint of absent) {
        if (derivedConstraints[constraint] !== undefined) return null
      }
      return this.handlers[31 - Math.clz32(candidates)]
    }`,
    ],
  ],
};

export const findMyWayPlugin = {
  name: 'caxton-find-my-way-closures',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]find-my-way[\\/]lib[\\/](node|handler-storage)\.js$/ }, (args) => {
      const rel = args.path
        .replace(/^.*[\\/]find-my-way[\\/]/, '')
        .split('\\')
        .join('/');
      let text = readFileSync(args.path, 'utf8');
      for (const patch of PATCHES[rel] ?? []) {
        // [text, replacement], or [first text, last text, replacement of everything from one to the other]
        const [from, until, by] = patch.length === 2 ? [patch[0], patch[0], patch[1]] : patch;
        const start = text.indexOf(from);
        const end = start < 0 ? -1 : text.indexOf(until, start);
        if (end < 0) throw new Error(`find-my-way ${rel}: the text to replace was not found (a new version?)`);
        text = text.slice(0, start) + by + text.slice(end + until.length);
      }
      return { contents: text, loader: 'js' };
    });
  },
};
