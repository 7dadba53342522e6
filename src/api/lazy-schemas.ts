/**
 * Route schemas built when they are first needed, not at start.
 *
 * A start that built every route's zod schemas made about 4,800 of them before its first answer,
 * each 15–20 µs of CPU and its garbage. What a route needs at start is only its place in the
 * router, so:
 *
 * - `docResponses(() => ({ 200: …, 404: … }))` is a route's `schema.response`. Responses are
 *   serialized plainly (app.ts), so response schemas only document the route: they are built when
 *   the OpenAPI document is (openapi.ts), on its first request. fastify sees an object with no
 *   keys and compiles no serializer, as for a route without response schemas.
 * - `onFirstRequest(() => schema)` is a route's `body`, `querystring`, `params` or `headers`: the
 *   schema is built when the route first validates a request (`lazyValidatorCompiler`), or when
 *   the document is built. fastify passes it to the validator compiler untouched (it is not a
 *   plain object, so fastify reads nothing from it).
 * - `onUse(() => schema)` is a schema shared by routes, made on its first call.
 *
 * Each is typed as what its thunk returns, so the type provider still types each request and
 * checks what each handler returns against the documented schemas.
 */
import { validatorCompiler } from 'fastify-type-provider-zod';

/** A schema built on first use. Its thunk is private: fastify must find no keys on it (see above). */
class Lazy {
  readonly #get: () => unknown;
  constructor(make: () => unknown) {
    this.#get = onUse(make);
  }
  get(): unknown {
    return this.#get();
  }
}

/** A route's `schema.response`, built by `make` when the API document is. */
export function docResponses<T extends object>(make: () => T): T {
  return new Lazy(make) as unknown as T;
}

/** A route's request schema (`body`, `querystring`, `params`, `headers`), built by `make` on first use. */
export function onFirstRequest<T>(make: () => T): T {
  return new Lazy(make) as unknown as T;
}

/** A route schema as given, or what its `docResponses` or `onFirstRequest` builds (openapi.ts). */
export function builtSchema(schema: unknown): unknown {
  return schema instanceof Lazy ? schema.get() : schema;
}

/** `make()` on the first call, its result ever after: a schema shared by routes, or anything else a start need not build. */
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

type CompileArgs = Parameters<typeof validatorCompiler>[0];
type Validate = ReturnType<typeof validatorCompiler>;

/** fastify-type-provider-zod's validator compiler, compiling an `onFirstRequest` schema on the route's first request. */
export function lazyValidatorCompiler(route: CompileArgs): Validate {
  const { schema } = route;
  if (!(schema instanceof Lazy)) return validatorCompiler(route);
  let validate: Validate | undefined;
  return (data) => (validate ??= validatorCompiler({ ...route, schema: schema.get() as CompileArgs['schema'] }))(data);
}
