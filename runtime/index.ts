/**
 * micro-fn: one-shot functions for TypeScript.
 * @example
 * import { defineFunction, errors } from 'micro-fn';
 *
 * export default defineFunction({
 *   name: 'helloworld',
 *   handlers: {
 *     Greeter: {
 *       Hello(req: { name?: unknown }) {
 *         if (typeof req.name !== 'string') throw errors.badRequest('helloworld', 'name is required');
 *         return { message: `Hello ${req.name}` };
 *       },
 *     },
 *   },
 * });
 */
export * from './core/index.js';
