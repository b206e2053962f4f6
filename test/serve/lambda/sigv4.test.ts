// SigV4 as serve's Lambda API checks it, against requests signed by the AWS SDK's own signer over real HTTP.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LambdaApiError } from '../../../serve/lambda/api-error.js';
import { checkSignature, type AcceptedKey } from '../../../serve/lambda/sigv4.js';
import { signedFetch } from '../../adapters/lambda/helpers.js';
import { withTimeout } from '../../helpers.js';

const key: AcceptedKey = {
  accessKeyId: 'MFNATESTTESTTESTTEST',
  secretAccessKey: 'c2VjcmV0LXNlY3JldC1zZWNyZXQ',
  invokeOnly: false,
};
let server: Server;
let url: string;

/** Answers 200 when the request's signature holds over its body, else the LambdaApiError's status and type. */
function start(): Promise<void> {
  server = createServer((req, res) => {
    let signed: ReturnType<typeof checkSignature>;
    const fail = (err: unknown) => {
      const e = err as LambdaApiError;
      res.writeHead(e instanceof LambdaApiError ? e.status : 500, { 'x-amzn-errortype': e.type ?? 'Error' });
      res.end(e.message);
    };
    try {
      signed = checkSignature(req, new Map([[key.accessKeyId, key]]));
    } catch (err) {
      req.resume();
      return fail(err);
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        signed.verify(Buffer.concat(chunks));
        res.writeHead(200).end('ok');
      } catch (err) {
        fail(err);
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      resolve();
    }),
  );
}

const outcome = async (response: Promise<Response>) => {
  const res = await withTimeout(response, 5000, 'the request');
  await res.text();
  return `${res.status} ${res.headers.get('x-amzn-errortype') ?? ''}`.trim();
};

// ---
const check = suite('checkSignature');
check.before(start);
check.after(() => new Promise<void>((resolve) => server.close(() => resolve())));

check('accepts what the AWS SDK signs: a body, an encoded ARN in the path, a query string (3 requests)', async () => {
  const arn = encodeURIComponent('arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST');
  assert.is(await outcome(signedFetch(`${url}/2015-03-31/functions`, { method: 'POST', body: '{"a":1}' }, key)), '200');
  assert.is(
    await outcome(signedFetch(`${url}/2015-03-31/functions/${arn}/invocations`, { method: 'POST', body: '{}' }, key)),
    '200',
  );
  assert.is(await outcome(signedFetch(`${url}/2015-03-31/functions/f?Qualifier=live&Marker=a%20b`, {}, key)), '200');
});

check(
  'refuses a body altered after signing, and an x-amz-content-sha256 that is not the body’s (2 requests)',
  async () => {
    const altered = signedFetch(
      `${url}/2015-03-31/functions`,
      { method: 'POST', body: '{"a":1}', sentBody: '{"a":2}' },
      key,
    );
    assert.is(await outcome(altered), '403 InvalidSignatureException');
    const declared = signedFetch(
      `${url}/2015-03-31/functions`,
      { method: 'POST', body: '{"a":1}', headers: { 'x-amz-content-sha256': '0'.repeat(64) } },
      key,
    );
    assert.is(await outcome(declared), '403 InvalidSignatureException');
  },
);

check('allows AWS’s 15 minutes of clock skew and no more: 14 min ok, 16 min old and 16 min ahead refused', async () => {
  const at = (minutes: number) =>
    signedFetch(`${url}/2015-03-31/functions/f`, {}, key, new Date(Date.now() + minutes * 60_000));
  assert.is(await outcome(at(-14)), '200');
  assert.is(await outcome(at(-16)), '403 InvalidSignatureException');
  assert.is(await outcome(at(16)), '403 InvalidSignatureException');
});

check('no header, another algorithm, an unknown key, a wrong secret: AWS’s four 403s', async () => {
  assert.is(await outcome(fetch(`${url}/2015-03-31/functions/f`)), '403 MissingAuthenticationTokenException');
  const basic = fetch(`${url}/2015-03-31/functions/f`, { headers: { authorization: 'Basic YTpi' } });
  assert.is(await outcome(basic), '403 IncompleteSignatureException');
  const stranger = { accessKeyId: 'AKIASTRANGER00000000', secretAccessKey: key.secretAccessKey };
  assert.is(
    await outcome(signedFetch(`${url}/2015-03-31/functions/f`, {}, stranger)),
    '403 UnrecognizedClientException',
  );
  const wrong = { ...key, secretAccessKey: 'not-it' };
  assert.is(await outcome(signedFetch(`${url}/2015-03-31/functions/f`, {}, wrong)), '403 InvalidSignatureException');
});

check.run();
