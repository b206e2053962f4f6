import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Metadata } from '../../../runtime/core/metadata.js';
import { jsonCodec } from '../../../runtime/core/codec.js';
import { isMicroError } from '../../../runtime/core/errors.js';

// ---
const metadata = suite('Metadata');

metadata('treats keys case-insensitively and keeps them in lower case', () => {
  const md = new Metadata({ Authorization: 'Bearer x', 'X-Trace': '1' });
  assert.is(md.get('authorization'), 'Bearer x');
  assert.is(md.get('AUTHORIZATION'), 'Bearer x');
  md.set('x-TRACE', '2');
  assert.is(md.size, 2);
  assert.equal(md.toJSON(), { authorization: 'Bearer x', 'x-trace': '2' });
  assert.ok(md.delete('X-Trace'));
  assert.not.ok(md.has('x-trace'));
});

metadata('merges from another Metadata, entries or a record, skipping undefined values', () => {
  const md = new Metadata(new Metadata({ a: '1' }));
  md.merge([['B', '2']]).merge({ c: '3', d: undefined });
  assert.equal(
    [...md],
    [
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ],
  );
});

metadata.run();

// ---
const codec = suite('jsonCodec');

codec('round-trips values and decodes an empty body as {}', () => {
  const value = { name: 'Ada', n: [1, 2], nested: { ok: true }, text: 'zażółć' };
  assert.equal(jsonCodec.decode(jsonCodec.encode(value)), value);
  assert.equal(jsonCodec.decode(new Uint8Array()), {});
  assert.equal(jsonCodec.decode(jsonCodec.encode(undefined)), null);
});

codec('rejects malformed JSON with a 400 MicroError', () => {
  try {
    jsonCodec.decode(new TextEncoder().encode('{"name":'));
    assert.unreachable('should throw');
  } catch (err) {
    assert.ok(isMicroError(err));
    assert.is(err.code, 400);
    assert.match(err.detail, /malformed JSON/);
  }
});

codec.run();
