/**
 * Compile-time checks that an API schema documents the domain type it serializes. The responses are serialized as the domain objects are (app.ts: schemas document,
 * they do not filter), so a schema that drifts from its type documents fields that are not sent,
 * or misses fields that are. The domain type stays the source (it lives in a lower layer); the
 * schema is checked against it: the same field names, the same optional ones, and every domain
 * value valid for the schema. Brands (MessageId...) and readonly are the domain's own and pass.
 */

/** True when A and B are the same type (not merely assignable both ways). */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** The keys of T whose field may be absent. */
type OptionalKeys<T> = { [K in keyof T]-?: Partial<Pick<T, K>> extends Pick<T, K> ? K : never }[keyof T];

/** True when the schema's output `Schema` documents the domain type `Domain` (see above). */
export type Documents<Schema, Domain> =
  Same<keyof Schema, keyof Domain> extends true
    ? Same<OptionalKeys<Schema>, OptionalKeys<Domain>> extends true
      ? [Domain] extends [Schema]
        ? true
        : false
      : false
    : false;

/** Compiles only when T is true: `export type X = Check<Documents<z.output<typeof s>, T>>`. */
export type Check<T extends true> = T;
