import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CallerSignal, connectFailure } from '../../../runtime/core/transport.js';

const coded = (code: string) => Object.assign(new Error(code), { code });

// ---
const failure = suite('connectFailure');

failure('calls a refused connection, or a host that does not exist, unreachable: nothing was sent', () => {
  for (const code of ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND'])
    assert.is(connectFailure(coded(code)), 'unreachable', code);
  // fetch hides the socket error in `cause`; a connect to every address of a name gives an AggregateError
  assert.is(connectFailure(new TypeError('fetch failed', { cause: coded('ECONNREFUSED') })), 'unreachable');
  const every = new AggregateError([coded('ECONNREFUSED'), coded('ENETUNREACH')], 'all failed');
  assert.is(connectFailure(new TypeError('fetch failed', { cause: every })), 'unreachable');
});

failure('calls a connection never made for a passing reason unsent', () => {
  for (const code of ['EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'EADDRNOTAVAIL'])
    assert.is(connectFailure(new TypeError('fetch failed', { cause: coded(code) })), 'unsent', code);
  assert.is(connectFailure(new AggregateError([coded('ECONNREFUSED'), coded('UND_ERR_CONNECT_TIMEOUT')])), 'unsent');
});

failure('says nothing for a failure once the request may have been sent: 6 of 6', () => {
  const sent = [
    coded('ECONNRESET'),
    new TypeError('fetch failed', { cause: coded('UND_ERR_SOCKET') }),
    coded('EPIPE'),
    new Error('terminated'),
    new AggregateError([coded('ECONNREFUSED'), coded('ECONNRESET')]),
    undefined,
  ];
  assert.is(sent.filter((err) => connectFailure(err) === undefined).length, 6);
});

failure.run();

// ---
const signal = suite('CallerSignal');

signal('calls each listener once when the caller goes, and not one that was removed: 2 of 3 called, once each', () => {
  const caller = new CallerSignal();
  const calls: string[] = [];
  caller.onGone(() => calls.push('a'));
  const remove = caller.onGone(() => calls.push('b'));
  caller.onGone(() => calls.push('c'));
  remove();
  assert.is(caller.gone, false);
  assert.is(caller.go(), true);
  assert.is(caller.go(), false, 'a second go changes nothing');
  assert.ok(caller.gone);
  assert.equal(calls, ['a', 'c']);
});

signal('calls a listener added after the caller went at once', () => {
  const caller = new CallerSignal();
  caller.go();
  let called = 0;
  caller.onGone(() => called++);
  assert.is(called, 1);
});

signal('go(false) marks the caller gone without calling anyone, now or later', () => {
  const caller = new CallerSignal();
  let called = 0;
  caller.onGone(() => called++);
  caller.go(false);
  caller.go();
  assert.ok(caller.gone);
  assert.is(called, 0);
});

signal.run();
