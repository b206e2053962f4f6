/**
 * events: a subscriber on topic user.created. Each message runs the function once; a handler that throws
 * fails the message, and the broker delivers it again.
 *
 *   npx micro-fn invoke examples/events --topic user.created '{"id":1}'
 */
import { defineFunction, errors, type MessageContext } from 'micro-fn';

interface UserCreated {
  id?: unknown;
  email?: unknown;
}

export default defineFunction({
  name: 'events',
  subscribers: {
    'user.created': (event: UserCreated, ctx: MessageContext) => {
      if (typeof event?.id !== 'number') throw errors.badRequest(ctx.service, 'user.created needs a numeric id');
      ctx.logger.info(`user ${event.id} created`, { attempt: ctx.attempt });
    },
  },
});
