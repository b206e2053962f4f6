import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Router, type HandlerWrapper, type SubscriberWrapper } from '../../../runtime/core/router.js';
import type { Context, MessageContext } from '../../../runtime/core/context.js';
import { isMicroError, type MicroError } from '../../../runtime/core/errors.js';

const ctx = {} as Context;
const mctx = {} as MessageContext;

// ---
const router = suite('Router');

class Base {
  Shared() {
    return 'base';
  }
}
class Greeter extends Base {
  prefix = 'Hello';
  Hello(req: { name: string }) {
    return `${this.prefix} ${req.name}`;
  }
  _private() {
    return 'hidden';
  }
}

router('turns the methods of a class instance, inherited ones included, into Service.Method endpoints', async () => {
  const r = new Router({ name: 's', handlers: { Greeter: new Greeter() } });
  assert.equal(
    r
      .endpoints()
      .map((e) => e.name)
      .sort(),
    ['Greeter.Hello', 'Greeter.Shared'],
  );
  assert.is(await r.handler('Greeter.Hello')!(ctx, { name: 'Ada' }), 'Hello Ada', 'methods stay bound to the instance');
  assert.is(r.handler('Greeter._private'), undefined);
  assert.is(r.handler('Greeter.constructor'), undefined);
});

router('turns the functions of a plain object into endpoints', async () => {
  const r = new Router({ name: 's', handlers: { Math: { Add: (req: { a: number; b: number }) => req.a + req.b } } });
  assert.is(await r.handler('Math.Add')!(ctx, { a: 2, b: 3 }), 5);
});

router('lists subscribers as endpoints marked subscriber', () => {
  const r = new Router({ name: 's', subscribers: { 'user.created': () => {} } });
  assert.equal(r.topics, ['user.created']);
  assert.equal(r.endpoints(), [{ name: 'user.created', metadata: { subscriber: 'true' } }]);
});

router('rejects a group name that is not an identifier and a subscriber that is not a function', () => {
  assert.throws(() => new Router({ name: 's', handlers: { 'Bad.Name': {} } }), /identifier/);
  assert.throws(() => new Router({ name: 's', subscribers: { t: 'nope' as never } }), /must be a function/);
});

router(
  'runs handler wrappers outermost first, before and after the handler, and lets them change the request',
  async () => {
    const trace: string[] = [];
    const outer: HandlerWrapper = async (_c, req, next) => {
      trace.push('outer before');
      const res = await next(req);
      trace.push('outer after');
      return res;
    };
    const inner: HandlerWrapper = async (_c, req, next) => {
      trace.push('inner before');
      const res = await next({ ...(req as object), name: 'Grace' });
      trace.push('inner after');
      return `${res}!`;
    };
    const r = new Router({
      name: 's',
      wrappers: [outer, inner],
      handlers: { G: { Hi: (req: { name: string }) => (trace.push('handler'), `hi ${req.name}`) } },
    });
    assert.is(await r.handler('G.Hi')!(ctx, { name: 'Ada' }), 'hi Grace!');
    assert.equal(trace, ['outer before', 'inner before', 'handler', 'inner after', 'outer after']);
  },
);

router('lets a handler wrapper answer without calling the handler', async () => {
  let ran = false;
  const deny: HandlerWrapper = async () => {
    throw new Error('denied');
  };
  const r = new Router({ name: 's', wrappers: [deny], handlers: { G: { Hi: () => (ran = true) } } });
  try {
    await r.handler('G.Hi')!(ctx, {});
    assert.unreachable();
  } catch (err) {
    assert.is((err as Error).message, 'denied');
  }
  assert.not.ok(ran);
});

router('runs subscriber wrappers around subscribers', async () => {
  const trace: string[] = [];
  const w: SubscriberWrapper = async (_c, payload, next) => {
    trace.push('before');
    await next(payload);
    trace.push('after');
  };
  const r = new Router({
    name: 's',
    subscriberWrappers: [w],
    subscribers: { t: (p: number) => void trace.push(`got ${p}`) },
  });
  await r.subscriber('t')!(mctx, 7);
  assert.equal(trace, ['before', 'got 7', 'after']);
});

router('refuses a second next() from a handler wrapper with a 500 and runs the handler exactly once', async () => {
  let runs = 0;
  let second: unknown;
  const twice: HandlerWrapper = async (_c, req, next) => {
    const first = await next(req);
    second = await next(req).catch((err: unknown) => err);
    return first;
  };
  const r = new Router({ name: 's', wrappers: [twice], handlers: { G: { Hi: () => `run ${++runs}` } } });
  assert.is(await r.handler('G.Hi')!(ctx, {}), 'run 1');
  assert.is(runs, 1);
  assert.ok(isMicroError(second), 'the second next() rejects with a MicroError');
  assert.is((second as MicroError).code, 500);
  assert.is((second as MicroError).id, 's');
  assert.match((second as MicroError).detail, /wrapper called next\(\) twice/);
  assert.is(await r.handler('G.Hi')!(ctx, {}), 'run 2', 'the next invocation gets a next() of its own');
});

router(
  'refuses a retry by an inner handler wrapper after the handler failed: the caller gets the 500, the handler ran once',
  async () => {
    let runs = 0;
    const outer: HandlerWrapper = (_c, req, next) => next(req);
    const retry: HandlerWrapper = async (_c, req, next) => {
      try {
        return await next(req);
      } catch {
        return next(req);
      }
    };
    const r = new Router({
      name: 's',
      wrappers: [outer, retry],
      handlers: {
        G: {
          Hi: () => {
            runs++;
            throw new Error('failed');
          },
        },
      },
    });
    const err = await r.handler('G.Hi')!(ctx, {}).catch((e: unknown) => e);
    assert.is(runs, 1);
    assert.is((err as MicroError).code, 500);
    assert.match((err as MicroError).detail, /twice/);
  },
);

router(
  'refuses a second next() from a subscriber wrapper with a 500 and runs the subscriber exactly once',
  async () => {
    let runs = 0;
    let second: unknown;
    const twice: SubscriberWrapper = async (_c, payload, next) => {
      await next(payload);
      await next(payload).catch((err: unknown) => void (second = err));
    };
    const r = new Router({ name: 's', subscriberWrappers: [twice], subscribers: { t: () => void runs++ } });
    await r.subscriber('t')!(mctx, 1);
    assert.is(runs, 1);
    assert.ok(isMicroError(second), 'the second next() rejects with a MicroError');
    assert.is((second as MicroError).code, 500);
    assert.match((second as MicroError).detail, /wrapper called next\(\) twice/);
    await r.subscriber('t')!(mctx, 2);
    assert.is(runs, 2, 'the next message gets a next() of its own');
  },
);

router.run();
