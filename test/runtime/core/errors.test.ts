import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  MicroError,
  errors,
  isMicroError,
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

microError('is retryable for 408, 429 and 502-504 only, unless told otherwise', () => {
  for (const code of [408, 429, 502, 503, 504]) assert.ok(new MicroError('x', code, '').retryable, `code ${code}`);
  for (const code of [400, 401, 403, 404, 405, 409, 413, 500])
    assert.not.ok(new MicroError('x', code, '').retryable, `code ${code}`);
  assert.ok(new MicroError('x', 500, 'connection refused', { retryable: true }).retryable);
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

parse.run();

// ---
const is = suite('isMicroError');

is('recognises an error from another copy of the module by its name and code', () => {
  const foreign = Object.assign(new Error('x'), { name: 'MicroError', code: 404 });
  assert.ok(isMicroError(foreign));
  assert.not.ok(isMicroError(new Error('x')));
  assert.not.ok(isMicroError({ name: 'MicroError', code: 404 }));
});

is.run();
