/**
 * helloworld: one endpoint, Greeter.Hello.
 *
 *   npx micro-fn invoke examples/helloworld Greeter.Hello '{"name":"Ada"}'
 *   {"message":"Hello Ada"}
 */
import { defineFunction, errors, type Context } from 'micro-fn';

interface HelloRequest {
  name?: unknown;
}

class Greeter {
  Hello(req: HelloRequest, ctx: Context) {
    if (typeof req?.name !== 'string' || req.name === '') throw errors.badRequest(ctx.service, 'name is required');
    return { message: `Hello ${req.name}` };
  }
}

export default defineFunction({
  name: 'helloworld',
  handlers: { Greeter: new Greeter() },
});
