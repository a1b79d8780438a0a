/**
 * Where the lockout limiter lived before verification got its own module (verification/): the
 * memory attempt store under its first name, for the callers that still import it from here.
 */
export type {
  AttemptStart,
  AttemptState,
  AttemptStore as AttemptLimiter,
} from "./verification/attempt-store.js";
export { MemoryAttemptStore as MemoryAttemptLimiter } from "./verification/memory-attempt-store.js";
