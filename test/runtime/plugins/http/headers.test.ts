import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Metadata, errors, isMicroError } from '../../../../runtime/core/index.js';
import {
  errorHeaderValue,
  isTransportHeader,
  metadataFromHeaders,
  metadataFromRawHeaders,
  requestHeaders,
  responseHeaders,
} from '../../../../runtime/plugins/http/headers.js';
import { transportRequest } from '../../../contracts/transport.js';

// ---
const transportLevel = suite('isTransportHeader');

transportLevel('is true for connection-level headers and proxy-*, false for metadata', () => {
  for (const name of [
    'host',
    'connection',
    'content-length',
    'transfer-encoding',
    'keep-alive',
    'accept-encoding',
    'user-agent',
    'accept',
    'expect',
    'te',
    'upgrade',
    'proxy-authorization',
  ]) {
    assert.ok(isTransportHeader(name), name);
  }
  for (const name of ['authorization', 'micro-service', 'micro-timeout', 'content-type', 'x-trace'])
    assert.not.ok(isTransportHeader(name), name);
});

transportLevel.run();

// ---
const fromRaw = suite('metadataFromRawHeaders');

fromRaw('keeps request headers but transport ones, lower-cased, joining repeats', () => {
  const metadata = metadataFromRawHeaders([
    'Host',
    'x',
    'X-Tag',
    'a',
    'x-tag',
    'b',
    'Micro-Endpoint',
    'A.B',
    'User-Agent',
    'curl',
    'Proxy-Connection',
    'k',
  ]);
  assert.equal(metadata.toJSON(), { 'x-tag': 'a, b', 'micro-endpoint': 'A.B' });
});

fromRaw.run();

// ---
const fromHeaders = suite('metadataFromHeaders');

fromHeaders('leaves out transport headers, content type and length, date and Micro-Error', () => {
  const headers = new Headers({
    'X-Result': 'ok',
    'Content-Type': 'application/json',
    Date: 'now',
    'Micro-Error': '{}',
    Connection: 'keep-alive',
    'Micro-Id': '1',
  });
  assert.equal(metadataFromHeaders(headers).toJSON(), { 'micro-id': '1', 'x-result': 'ok' });
});

fromHeaders.run();

// ---
const outgoing = suite('requestHeaders');

outgoing('sends metadata, then the mucp headers from the request itself, which win', () => {
  const request = transportRequest('Greeter.Hello', '{}', {
    'X-A': '1',
    'micro-endpoint': 'Wrong.One',
    host: 'evil',
    'content-length': '5',
  });
  assert.equal(requestHeaders(request), {
    'x-a': '1',
    'micro-endpoint': 'Greeter.Hello',
    'micro-service': 'greeter',
    'micro-id': request.id,
    'content-type': 'application/json',
  });
});

outgoing('throws a 400 for metadata that cannot be an HTTP header', () => {
  for (const metadata of [{ 'x-a': 'two\r\nlines' }, { 'x-a': '€' }, { 'a b': '1' }] as Record<string, string>[]) {
    let error: unknown;
    try {
      requestHeaders(transportRequest('A.B', '{}', metadata));
    } catch (err) {
      error = err;
    }
    assert.ok(isMicroError(error) && error.code === 400, JSON.stringify(metadata));
  }
});

outgoing.run();

// ---
const outgoingReply = suite('responseHeaders');

outgoingReply('copies reply metadata but the names the listener writes itself', () => {
  const metadata = new Metadata({
    'X-Out': 'yes',
    'Content-Type': 'text/plain',
    'Content-Length': '1',
    'Micro-Id': 'x',
    'Micro-Error': 'x',
    Connection: 'x',
  });
  assert.equal(responseHeaders(metadata), { 'x-out': 'yes' });
  assert.equal(responseHeaders(undefined), {});
});

outgoingReply.run();

// ---
const errorHeader = suite('errorHeaderValue');

errorHeader('is the error JSON with non-ASCII escaped, parsing back to the same error', () => {
  const error = errors.badRequest('svc', 'prénom requis ✓');
  const value = errorHeaderValue(error);
  assert.ok(/^[\x20-\x7e]+$/.test(value), value);
  assert.equal(JSON.parse(value), error.toJSON());
});

errorHeader('cuts a long detail, since header sizes are limited', () => {
  const value = errorHeaderValue(errors.internal('svc', 'x'.repeat(100_000)));
  assert.ok(value.length < 3000);
  assert.is((JSON.parse(value) as { code: number }).code, 500);
});

errorHeader.run();
