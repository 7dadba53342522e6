/** Nominal typing for identifiers: a plain string cannot be passed where an AgentName is expected. */
declare const brand: unique symbol;
export type Brand<T, B extends string> = T & { readonly [brand]: B };
