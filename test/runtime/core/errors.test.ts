import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  MicroError,
  NOT_STARTED,
  errors,
  fromWire,
  isMicroError,
  notStarted,
  parseError,
  statusText,
  toMicroError,
} from '../../../runtime/core/errors.js';

// ---
const microError = suite('MicroError');

microError('serialises to go-micro error JSON', () => {
  const err = new MicroError('helloworld', 400, 'name is required');
  assert.equal(JSON.parse(JSON.stringify(err)), {
    id: 'helloworld',
    code: 400,
    detail: 'name is required',
    status: 'Bad Request',
  });
  assert.is(String(err), '{"id":"helloworld","code":400,"detail":"name is required","status":"Bad Request"}');
  assert.is(err.name, 'MicroError');
  assert.ok(err instanceof Error);
});

microError('raised here, is retryable for the refusals 429 and 503 only, unless told otherwise', () => {
  for (const code of [429, 503]) assert.ok(new MicroError('x', code, '').retryable, `code ${code}`);
  // A 408, 500, 502 or 504 may come after a handler ran: never retryable by default.
  for (const code of [400, 401, 403, 404, 405, 408, 409, 413, 500, 502, 504])
    assert.not.ok(new MicroError('x', code, '').retryable, `code ${code}`);
  assert.ok(new MicroError('x', 500, 'connection refused', { retryable: true }).retryable);
  assert.not.ok(new MicroError('x', 503, 'sent, then lost', { retryable: false }).retryable);
});

microError('marked unreachable, is retryable too', () => {
  const err = new MicroError('x', 503, 'ECONNREFUSED', { unreachable: true });
  assert.equal([err.unreachable, err.retryable], [true, true]);
  assert.not.ok(new MicroError('x', 503, '').unreachable);
});

microError.run();

// ---
const helpers = suite('errors');

helpers('has a helper for every status the wire needs, with its status text', () => {
  const table: [keyof typeof errors, number, string][] = [
    ['badRequest', 400, 'Bad Request'],
    ['unauthorized', 401, 'Unauthorized'],
    ['forbidden', 403, 'Forbidden'],
    ['notFound', 404, 'Not Found'],
    ['methodNotAllowed', 405, 'Method Not Allowed'],
    ['timeout', 408, 'Request Timeout'],
    ['conflict', 409, 'Conflict'],
    ['payloadTooLarge', 413, 'Payload Too Large'],
    ['tooManyRequests', 429, 'Too Many Requests'],
    ['internal', 500, 'Internal Server Error'],
    ['unavailable', 503, 'Service Unavailable'],
  ];
  for (const [name, code, status] of table) {
    const err = errors[name]('svc', 'why');
    assert.equal(err.toJSON(), { id: 'svc', code, detail: 'why', status });
    assert.is(statusText(code), status);
  }
  assert.is(errors.notFound('svc').detail, 'Not Found');
});

helpers.run();

// ---
const to = suite('toMicroError');

to('passes a MicroError through unchanged', () => {
  const err = errors.conflict('svc', 'taken');
  assert.is(toMicroError(err), err);
});

to('turns anything else into a 500 that does not leak the stack or message', () => {
  const bug = new TypeError('cannot read properties of undefined (secret path /home/x)');
  const err = toMicroError(bug, 'svc');
  assert.is(err.code, 500);
  assert.is(err.detail, 'internal server error');
  assert.not.match(JSON.stringify(err), /secret|TypeError|at /);
  assert.is(err.cause, bug);
  assert.is(toMicroError('a string', 'svc').code, 500);
  assert.is(toMicroError(undefined, 'svc').code, 500);
});

to.run();

// ---
const parse = suite('parseError');

parse('reads error JSON from a string, bytes or an object', () => {
  const json = '{"id":"helloworld","code":400,"detail":"name is required","status":"Bad Request"}';
  for (const input of [json, new TextEncoder().encode(json), JSON.parse(json)]) {
    const err = parseError(input);
    assert.ok(isMicroError(err));
    assert.equal(err.toJSON(), JSON.parse(json));
  }
});

parse('turns anything that is not error JSON into a generic remote error with the fallback code', () => {
  for (const input of [
    '<html>Bad Gateway</html>',
    '',
    '{"code":"x"}',
    '{"code":99999}',
    null,
    42,
    new Uint8Array([0xff, 0xfe]),
  ]) {
    const err = parseError(input, 502);
    assert.is(err.code, 502, String(input));
    assert.ok(err.detail.length <= 512);
  }
});

parse('reads an error off the wire as retryable only when its id is micro-fn.not-started (2 of 9 cases)', () => {
  const cases: [unknown, boolean][] = [
    ['{"id":"micro-fn.not-started","code":503,"detail":"taken","status":"Service Unavailable"}', true],
    ['{"id":"micro-fn.not-started","code":429,"detail":"queue full","status":"Too Many Requests"}', true],
    ['{"id":"svc","code":503,"detail":"a handler threw it","status":"Service Unavailable"}', false],
    ['{"id":"svc","code":429,"detail":"a handler threw it","status":"Too Many Requests"}', false],
    ['{"id":"svc","code":408,"detail":"timed out","status":"Request Timeout"}', false],
    ['{"id":"svc","code":500,"detail":"boom","status":"Internal Server Error"}', false],
    ['{"id":"proxy","code":502,"detail":"bad gateway","status":"Bad Gateway"}', false],
    ['{"id":"proxy","code":504,"detail":"gateway timeout","status":"Gateway Timeout"}', false],
    ['<html>503 Service Unavailable</html>', false],
  ];
  const retried = cases.filter(([input, expected]) => {
    const err = parseError(input, 503);
    assert.is(err.retryable, expected, String(input));
    return err.retryable;
  });
  assert.is(retried.length, 2);
});

parse.run();

// ---
const notStartedSuite = suite('notStarted');

notStartedSuite('makes a retryable refusal with the id micro-fn.not-started', () => {
  const err = notStarted(503, 'function f has already taken its one invocation');
  assert.equal(err.toJSON(), {
    id: NOT_STARTED,
    code: 503,
    detail: 'function f has already taken its one invocation',
    status: 'Service Unavailable',
  });
  assert.ok(err.retryable);
  assert.ok(fromWire(err.id, err.code, err.detail).retryable);
  assert.not.ok(fromWire('f', 503, err.detail).retryable);
});

notStartedSuite.run();

// ---
const is = suite('isMicroError');

is('recognises an error from another copy of the module by its name and code', () => {
  const foreign = Object.assign(new Error('x'), { name: 'MicroError', code: 404 });
  assert.ok(isMicroError(foreign));
  assert.not.ok(isMicroError(new Error('x')));
  assert.not.ok(isMicroError({ name: 'MicroError', code: 404 }));
});

is.run();
