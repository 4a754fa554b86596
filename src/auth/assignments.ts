/**
 * Assignment tokens: the opaque bearer token the coordinator hands a composite executor in
 * `:begin`. It is bound to that NodeRun, lets the executor make exactly the callbacks a composite
 * executor makes (create children under it, read, evaluate and complete it and its descendants),
 * and stops working when the NodeRun is terminal. Only a hash of each token is kept, with the
 * NodeRun in the store, so that every instance sharing the store accepts it and sees its end.
 */
import { createHash, randomBytes } from 'node:crypto';

export type { Assignment } from '../store/store.js';

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

/** A new token: 256 random bits, base64url (never contains `.`, unlike a JWT). */
export const newAssignmentToken = () => randomBytes(32).toString('base64url');

/** JWTs are three dot-separated parts; an assignment token has no dot. */
export const isAssignmentToken = (token: string) => !token.includes('.');
