/**
 * The deadline of a Lambda invocation. Lambda ends an invocation that runs past its timeout (`Sandbox.Timedout`),
 * and the caller then gets Lambda's error instead of micro-fn's: so the handler's deadline is Lambda's remaining
 * time less a reserve in which the 408 is returned, the handler winds down (LAMBDA_GRACE) and the function stops.
 */
import type { Context } from './events.js';

/** What a handler past its deadline is given to wind down on Lambda: less than elsewhere (1 s), as it is billed. */
export const LAMBDA_GRACE = 200;

/** Kept back from the remaining time: the grace, and the function's stop and return. */
const RESERVE = LAMBDA_GRACE + 100;

/** Milliseconds the handler gets: the remaining time less the reserve (half of it when little is left). */
export function handlerBudget(context: Context): number {
  const remaining = context.getRemainingTimeInMillis();
  return Math.max(1, remaining - Math.min(RESERVE, Math.floor(remaining / 2)));
}
