import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError } from '../../../../runtime/core/index.js';
import { DEFAULT_LISTEN_ADDRESS, nodeAddress, parseListenAddress } from '../../../../runtime/plugins/http/address.js';

// ---
const parse = suite('parseListenAddress');

parse('reads host:port, :port, [ipv6]:port and http://host:port', () => {
  assert.equal(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  assert.equal(parseListenAddress(':8080'), { host: '0.0.0.0', port: 8080 });
  assert.equal(parseListenAddress('[::1]:9000'), { host: '::1', port: 9000 });
  assert.equal(parseListenAddress('http://localhost:4001'), { host: 'localhost', port: 4001 });
  assert.equal(parseListenAddress('HTTP://127.0.0.1:4001/ignored/path'), { host: '127.0.0.1', port: 4001 });
});

parse(`defaults to ${DEFAULT_LISTEN_ADDRESS}: loopback, a free port`, () => {
  assert.equal(parseListenAddress(), { host: '127.0.0.1', port: 0 });
});

parse('rejects anything else with a ConfigError that shows the accepted forms', () => {
  for (const bad of [
    '',
    'localhost',
    '127.0.0.1',
    '127.0.0.1:99999',
    'host:port',
    'https://127.0.0.1:443',
    'nats://x:4222',
  ]) {
    let error: unknown;
    try {
      parseListenAddress(bad);
    } catch (err) {
      error = err;
    }
    assert.instance(error, ConfigError, `"${bad}" is refused`);
    assert.match((error as ConfigError).message, /127\.0\.0\.1:0|plain http/);
  }
});

parse.run();

// ---
const shown = suite('nodeAddress');

shown('is http://host:port, IPv6 in brackets, a wildcard bind shown as loopback', () => {
  assert.is(nodeAddress('127.0.0.1', 4001), 'http://127.0.0.1:4001');
  assert.is(nodeAddress('::1', 4001), 'http://[::1]:4001');
  assert.is(nodeAddress('0.0.0.0', 4001), 'http://127.0.0.1:4001');
  assert.is(nodeAddress('::', 4001), 'http://[::1]:4001');
});

shown.run();
