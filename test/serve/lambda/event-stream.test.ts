// The event-stream encoder, read back by the AWS SDK's own decoder (@smithy/core's EventStreamCodec: test only).
import { EventStreamCodec } from '@smithy/core/event-streams';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  MAX_CHUNK_PAYLOAD,
  crc32,
  eventMessage,
  invokeComplete,
  payloadChunks,
} from '../../../serve/lambda/event-stream.js';

const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes).toString('utf8'),
  (text) => new Uint8Array(Buffer.from(text, 'utf8')),
);
const headersOf = (message: ReturnType<EventStreamCodec['decode']>) =>
  Object.fromEntries(Object.entries(message.headers).map(([k, v]) => [k, v.value]));

// ---
const chunks = suite('payloadChunks');

chunks('encodes a PayloadChunk event that the SDK decoder reads back, bytes intact', () => {
  const payload = Buffer.from('{"n":3}\n{"n":2}\n');
  const [message, ...rest] = payloadChunks(payload);
  assert.is(rest.length, 0);
  const decoded = codec.decode(message!);
  assert.equal(headersOf(decoded), {
    ':event-type': 'PayloadChunk',
    ':content-type': 'application/octet-stream',
    ':message-type': 'event',
  });
  assert.equal(Buffer.from(decoded.body), payload);
});

chunks(
  'splits a chunk longer than MAX_CHUNK_PAYLOAD into messages of at most that (2.5 × the bound: 3 messages)',
  () => {
    const payload = Buffer.alloc(MAX_CHUNK_PAYLOAD * 2.5, 7);
    const messages = payloadChunks(payload);
    assert.is(messages.length, 3);
    const bodies = messages.map((m) => Buffer.from(codec.decode(m).body));
    assert.ok(bodies.every((b) => b.byteLength <= MAX_CHUNK_PAYLOAD));
    assert.equal(Buffer.concat(bodies), payload);
  },
);

chunks('encodes nothing for an empty chunk', () => {
  assert.is(payloadChunks(new Uint8Array(0)).length, 0);
});

chunks.run();

// ---
const complete = suite('invokeComplete');

complete('encodes an InvokeComplete event with its JSON fields', () => {
  const decoded = codec.decode(invokeComplete({ ErrorCode: 'Unhandled', ErrorDetails: 'boom', LogResult: 'U1RBUlQ=' }));
  assert.is(headersOf(decoded)[':event-type'], 'InvokeComplete');
  assert.is(headersOf(decoded)[':content-type'], 'application/json');
  assert.equal(JSON.parse(Buffer.from(decoded.body).toString()), {
    ErrorCode: 'Unhandled',
    ErrorDetails: 'boom',
    LogResult: 'U1RBUlQ=',
  });
});

complete.run();

// ---
const message = suite('eventMessage');

message('is refused by the SDK decoder when a byte of it changes (its CRCs are checked)', () => {
  const good = eventMessage('PayloadChunk', 'application/octet-stream', Buffer.from('hello'));
  codec.decode(good);
  const bad = Buffer.from(good);
  bad[bad.byteLength - 6]! ^= 1;
  assert.throws(() => codec.decode(bad), /checksum/i);
});

message.run();

// ---
const crc = suite('crc32');

crc('gives the standard check value of "123456789"', () => {
  assert.is(crc32(Buffer.from('123456789')), 0xcbf43926);
});

crc.run();
