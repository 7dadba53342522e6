/**
 * Response schemas built when the API document is, not at start.
 *
 * Responses are serialized plainly (app.ts), so a route's response schemas only document it: the
 * OpenAPI document (openapi.ts) is all that reads them, on its first request. Built at start they
 * were about a third of the zod schemas a start made before its first answer (each costs 15–20 µs
 * of CPU and its garbage). A route gives `response: docResponses(() => ({ 200: …, 404: … }))`, and
 * the schemas it names only there are made by `onUse`, on first use.
 *
 * fastify sees an object with no keys: it compiles no response serializer (it would ignore the
 * schema anyway: the serializer compiler is JSON.stringify) and answers as it does for a route
 * without response schemas. The type is the thunk's result, so the type provider still checks
 * what each handler returns against the documented schemas.
 */

class DocResponses {
  readonly #make: () => unknown;
  constructor(make: () => unknown) {
    this.#make = make;
  }
  static resolve(r: unknown): unknown {
    return r instanceof DocResponses ? r.#make() : r;
  }
}

/** A route's `schema.response`, built by `make` when the API document is. */
export function docResponses<T extends object>(make: () => T): T {
  return new DocResponses(make) as unknown as T;
}

/** What a route's `schema.response` documents (openapi.ts): the built schemas, or the value as given. */
export function documentedResponses(response: unknown): unknown {
  return DocResponses.resolve(response);
}

/** `make()` on the first call, its result ever after: a response-only schema shared by routes. */
export function onUse<T>(make: () => T): () => T {
  let made = false;
  let value: T;
  return () => {
    if (!made) {
      value = make();
      made = true;
    }
    return value;
  };
}
