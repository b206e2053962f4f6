/**
 * The local Lambda API's bounds, attacked against a real `micro-fn serve`: uploads refused from Content-Length
 * before a byte is read, chunked bodies read only up to their limit, the bytes received at once capped across
 * requests, and zip bombs refused in AWS's shapes with serve's memory and disk left as they were.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { CreateFunctionCommand, GetFunctionCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { readCredential } from '../../../runtime/plugins/local/credential.js';
import { MAX_UNZIPPED_BYTES } from '../../../serve/lambda/unpack.js';
import { start, tempHome, type Running } from '../../cli/helpers.js';
import { rejects, sleep, withTimeout } from '../../helpers.js';
import { zeroBomb } from './bombs.js';

const ROLE = 'arn:aws:iam::000000000000:role/micro-fn-test';
const MB = 1024 * 1024;

let scratch: ReturnType<typeof tempHome>;
let serve: Running;
let gateway: string;
let client: LambdaClient;
const sockets: Socket[] = [];

/** An Authorization header of the right form, key and date (checked before the body), its signature made up. */
function preSigned(): Record<string, string> {
  const key = readCredential(scratch.home)?.aws.accessKeyId ?? 'micro-fn';
  const date = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
  return {
    'x-amz-date': date,
    authorization: `AWS4-HMAC-SHA256 Credential=${key}/${date.slice(0, 8)}/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`,
  };
}

/** A request's head on a raw socket; `answer` resolves with what serve writes before it closes the connection. */
function head(
  path: string,
  headers: Record<string, string>,
): { socket: Socket; answer: Promise<string>; written: () => number } {
  const { port } = new URL(gateway);
  const socket = connect(Number(port), '127.0.0.1');
  sockets.push(socket);
  let data = '';
  let written = 0;
  socket.setEncoding('latin1');
  socket.on('data', (c: string) => (data += c));
  socket.on('error', () => {});
  const answer = new Promise<string>((resolve) => socket.on('close', () => resolve(data)));
  const lines = Object.entries({ host: `127.0.0.1:${port}`, ...preSigned(), ...headers }).map(([k, v]) => `${k}: ${v}`);
  socket.write(`POST ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
  const write = socket.write.bind(socket);
  socket.write = ((chunk: Buffer) => ((written += chunk.length), write(chunk))) as typeof socket.write;
  return { socket, answer, written: () => written };
}

/** Status, `x-amzn-errortype` and JSON body of a raw answer. */
function parse(text: string): { status: number; type: string | undefined; body: Record<string, unknown> } {
  const [top = '', body = ''] = text.split('\r\n\r\n');
  return {
    status: Number(/^HTTP\/1\.1 (\d+)/.exec(top)?.[1]),
    type: /\r\nx-amzn-errortype: (\S+)/i.exec(top)?.[1],
    body: body ? (JSON.parse(body) as Record<string, unknown>) : {},
  };
}

const rss = (field: 'VmRSS' | 'VmHWM') =>
  Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${serve.child.pid}/status`, 'utf8'))?.[1]) *
  1024;

/** What serve has unpacked under MICRO_FN_HOME/lambda, the SDK link aside. */
function unpacked(): string[] {
  const root = join(scratch.home, 'lambda');
  if (!existsSync(root)) return [];
  // <serve id>/node_modules/@aws-sdk is the SDK's link; <serve id>/<function>/… would be unpacked code.
  return readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((p) => {
    const parts = p.split('/');
    return parts.length > 1 && parts[1] !== 'node_modules';
  });
}

// ---
const api = suite("micro-fn serve: the Lambda API's bounds");

api.before(async () => {
  scratch = tempHome();
  serve = start(['serve', '--address', '127.0.0.1:0', '--quiet'], { MICRO_FN_HOME: scratch.home });
  const [, address] = await serve.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  gateway = address!;
  const credentials = readCredential(scratch.home)?.aws ?? { accessKeyId: 'micro-fn', secretAccessKey: 'local' };
  client = new LambdaClient({ endpoint: gateway, region: 'us-east-1', credentials, maxAttempts: 1 });
});

api.after.each(() => {
  for (const s of sockets.splice(0)) s.destroy();
});

api.after(async () => {
  client.destroy();
  serve.child.kill('SIGTERM');
  await serve.exited(15_000).catch(() => serve.kill());
  scratch.cleanup();
});

api(
  "refuses a zip bomb (0.3 MB inflating to 300 MB) in AWS's shape; serve's RSS grows < 64 MB, nothing on disk",
  async () => {
    const bomb = await zeroBomb(300 * MB);
    const before = rss('VmRSS');
    // Resets the peak (VmHWM) to what is resident now, so the peak read after is this request's.
    writeFileSync(`/proc/${serve.child.pid}/clear_refs`, '5');
    const err = (await rejects(() =>
      client.send(
        new CreateFunctionCommand({
          FunctionName: 'bomb',
          Runtime: 'nodejs22.x',
          Role: ROLE,
          Handler: 'index.handler',
          Code: { ZipFile: bomb },
        }),
      ),
    )) as { name: string; message: string; $metadata: { httpStatusCode: number } };
    assert.is(err.name, 'InvalidParameterValueException');
    assert.is(err.$metadata.httpStatusCode, 400);
    assert.is(err.message, `Unzipped size must be smaller than ${MAX_UNZIPPED_BYTES} bytes`);
    const grew = rss('VmHWM') - before;
    console.log(
      `  zip bomb (${bomb.byteLength} bytes of zip, 300 MB inflated): serve's peak RSS grew ${(grew / MB).toFixed(1)} MB`,
    );
    assert.ok(grew < 64 * MB, `serve's RSS grew ${(grew / MB).toFixed(1)} MB`);
    assert.equal(unpacked(), []);
    const lying = await zeroBomb(300 * MB, 1000);
    const corrupt = (await rejects(() =>
      client.send(
        new CreateFunctionCommand({
          FunctionName: 'bomb',
          Runtime: 'nodejs22.x',
          Role: ROLE,
          Handler: 'index.handler',
          Code: { ZipFile: lying },
        }),
      ),
    )) as { name: string; message: string };
    assert.is(corrupt.name, 'InvalidParameterValueException');
    assert.match(corrupt.message, /^Could not unzip uploaded file.*larger than its stated 1000 bytes/);
    assert.equal(unpacked(), [], 'nothing left on disk');
  },
);

api(
  "refuses a 100 MB upload from its Content-Length, before reading it: 413 in AWS's shape, well under a second",
  async () => {
    const started = Date.now();
    const { answer, written } = head('/2015-03-31/functions', {
      'content-type': 'application/json',
      'content-length': String(100 * MB),
    });
    const text = await withTimeout(answer, 5000, 'the answer to a 100 MB upload');
    const took = Date.now() - started;
    const { status, type, body } = parse(text);
    assert.is(status, 413);
    assert.is(type, 'RequestEntityTooLargeException');
    assert.equal(body, {
      Type: 'User',
      message: `Request must be smaller than ${70 * MB} bytes for the CreateFunction operation`,
    });
    assert.is(written(), 0, 'not a byte of the body was sent');
    assert.ok(took < 500, `answered in ${took} ms`);
    console.log(`  100 MB upload with Content-Length: 413 in ${took} ms, 0 body bytes read`);
  },
);

api('reads a chunked Invoke body only up to 6 MB: 413 RequestTooLargeException, the connection closed', async () => {
  const { socket, answer, written } = head('/2015-03-31/functions/nobody/invocations', {
    'content-type': 'application/json',
    'transfer-encoding': 'chunked',
  });
  const chunk = Buffer.alloc(256 * 1024, 0x20);
  const frame = Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]);
  let answered = false;
  void answer.then(() => (answered = true));
  while (!answered && written() < 64 * MB && !socket.destroyed) {
    if (!socket.write(frame)) await Promise.race([new Promise((r) => socket.once('drain', r)), sleep(100)]);
  }
  const { status, type } = parse(await withTimeout(answer, 5000, 'the answer'));
  assert.is(status, 413);
  assert.is(type, 'RequestTooLargeException');
  assert.ok(written() < 32 * MB, `${(written() / MB).toFixed(1)} MB sent before serve stopped reading`);
});

api(
  'caps the bytes received at once: with two 70 MB uploads in flight a third gets 429 TooManyRequestsException',
  async () => {
    const size = String(70 * MB);
    const uploads = [0, 1].map(() =>
      head('/2015-03-31/functions', { 'content-type': 'application/json', 'content-length': size }),
    );
    for (const u of uploads) u.socket.write(Buffer.alloc(1024, 0x20)); // started, then stalled
    await sleep(200);
    const third = head('/2015-03-31/functions', { 'content-type': 'application/json', 'content-length': String(MB) });
    const text = await withTimeout(third.answer, 5000, 'the third upload');
    const { status, type, body } = parse(text);
    assert.is(status, 429);
    assert.is(type, 'TooManyRequestsException');
    assert.match(String(body.message), /is receiving \d+ bytes of requests, its limit is \d+: try again shortly/);
    assert.match(text, /\r\nretry-after: 1\r\n/i);
    for (const u of uploads) u.socket.destroy();
    await sleep(200);
    // Room again: the stalled uploads gave their bytes back when their connections went.
    const err = (await rejects(() => client.send(new GetFunctionCommand({ FunctionName: 'nobody' })))) as {
      name: string;
    };
    assert.is(err.name, 'ResourceNotFoundException');
  },
);

api.run();
