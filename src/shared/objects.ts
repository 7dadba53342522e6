/**
 * The first spread of an object literal that copies an object and adds fields to it:
 * `{ ...COPY_ROOT, ...copied, added: 1 }` is `{ ...copied, added: 1 }`, field for field and in
 * the same order.
 *
 * Why: when a literal starts with the spread of a non-empty object, V8's optimized code clones
 * that object's hidden class, and on Node 20 every field added after it then makes a new hidden
 * class, on every evaluation: ~1 µs each, and every reader of the result goes megamorphic. A
 * literal whose first spread is this empty object keeps one hidden class (ADR 0107). A literal
 * that only overrides fields its first spread already has is not affected and needs none.
 *
 * Only where a benchmark shows the copy hot (the messaging engine's rows and reads, the run path
 * in src/execution); elsewhere a plain `{ ...copied, added }` is the code to write.
 */
export const COPY_ROOT: Readonly<Record<never, never>> = Object.freeze({});
