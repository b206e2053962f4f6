import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { asText } from '../../../../runtime/plugins/http/text-body.js';

const encoder = new TextEncoder();

// ---
const asTextSuite = suite('asText');

asTextSuite('turns a small JSON body into the same UTF-8 text', () => {
  const json = '{"name":"Zoë 名前"}';
  const text = asText('application/json', encoder.encode(json));
  assert.is(text, json);
  assert.equal(encoder.encode(text as string), encoder.encode(json), 'the very same bytes');
});

asTextSuite('leaves bytes that are not UTF-8, another content type and a large body as they are', () => {
  const invalid = new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]);
  assert.is(asText('application/json', invalid), invalid);
  const form = encoder.encode('a=1');
  assert.is(asText('application/x-www-form-urlencoded', form), form);
  const json = encoder.encode('{"n":1}');
  assert.is(asText('application/json; charset=utf-8', json), json);
  const large = encoder.encode(JSON.stringify({ s: 'x'.repeat(70_000) }));
  assert.is(asText('application/json', large), large);
});

asTextSuite.run();
