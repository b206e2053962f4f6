/**
 * Lambda adapter test helpers: build a fixture's deployment package and unpack it as Lambda would; run the
 * local Lambda API with an AWS SDK client for it.
 */
import { spawnSync } from 'node:child_process';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SignatureV4 } from '@smithy/signature-v4';
import { suite, type Test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildLambda, type LambdaBuildResult } from '../../../adapters/lambda/build.js';
import { deployLambda } from '../../../adapters/lambda/deploy.js';
import { Metadata } from '../../../runtime/core/metadata.js';
import { LAMBDA_ENDPOINT_METADATA } from '../../../runtime/plugins/lambda/address.js';
import { createLambdaTransport } from '../../../runtime/plugins/lambda/transport.js';
import { LambdaEndpoint } from '../../../serve/lambda/endpoint.js';
import { runtimeInterfaceClient } from '../../../serve/lambda/environment.js';
import { withTimeout } from '../../helpers.js';
import { startNatsServer, type NatsServer } from '../../nats-server.js';

export const root = fileURLToPath(new URL('../../..', import.meta.url));

/**
 * Whether the official runtime interface client is installed (`micro-fn install lambda-runtime`, found as
 * serve/lambda/ric.ts says: a test's own MICRO_FN_HOME falls back to ~/.micro-fn). Missing, its tests are skipped
 * with a printed reason naming that command; with CI=true (where .ci/run installs it) its absence is a failure.
 */
export function ricAvailable(): boolean {
  let ok = true;
  try {
    runtimeInterfaceClient();
  } catch {
    ok = false;
  }
  if (!ok && process.env.CI === 'true')
    throw new Error(
      'the Lambda runtime interface client is not installed, and CI=true: .ci/run runs `npx micro-fn install lambda-runtime`',
    );
  if (!ok)
    console.log(
      '  (skipping tests that run Lambda environments: the Lambda runtime interface client is not installed; run `npx micro-fn install lambda-runtime`)',
    );
  return ok;
}

/** Runs `suites` only where the runtime interface client is installed (see ricAvailable). */
export function runWithRic(...suites: { run(): void }[]): void {
  if (ricAvailable()) for (const s of suites) s.run();
}

/** A zip entry as an independent reader (Info-ZIP's unzip, else Python's zipfile) sees it. */
export interface ZipListing {
  name: string;
  /** Unix permission bits, e.g. 0o644. */
  mode: number;
  size: number;
}

const hasUnzip = spawnSync('unzip', ['-v'], { stdio: 'ignore' }).status === 0;

function run(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
  return r.stdout;
}

/** Lists a zip's entries after checking every CRC. */
export function listZip(file: string): ZipListing[] {
  if (hasUnzip) {
    run('unzip', ['-tq', file]);
    // zipinfo lines: "-rw-r--r--  2.0 unx   163031 b- defN 80-Jan-01 00:00 index.mjs"
    return run('unzip', ['-Z', file])
      .split('\n')
      .filter((line) => /^[-d][rwx-]{9}\s/.test(line))
      .map((line) => {
        const parts = line.trim().split(/\s+/);
        const perms = parts[0]!.slice(1);
        const mode = [0, 3, 6].reduce(
          (m, i) =>
            (m << 3) | ((perms[i] === 'r' ? 4 : 0) | (perms[i + 1] === 'w' ? 2 : 0) | (perms[i + 2] === 'x' ? 1 : 0)),
          0,
        );
        return { name: parts.slice(8).join(' '), mode, size: Number(parts[3]) };
      });
  }
  const script =
    'import json,sys,zipfile\nz=zipfile.ZipFile(sys.argv[1])\nassert z.testzip() is None\nprint(json.dumps([[i.filename,(i.external_attr>>16)&0o777,i.file_size] for i in z.infolist()]))';
  return (JSON.parse(run('python3', ['-c', script, file])) as [string, number, number][]).map(([name, mode, size]) => ({
    name,
    mode,
    size,
  }));
}

/** Extracts `file` into `dir`. */
export function unpack(file: string, dir: string): void {
  if (hasUnzip) run('unzip', ['-q', '-o', file, '-d', dir]);
  else run('python3', ['-m', 'zipfile', '-e', file, dir]);
}

/** A built deployment package, unpacked into `taskRoot`; `cleanup` removes both. */
export interface Package {
  build: LambdaBuildResult;
  zip: string;
  taskRoot: string;
  cleanup(): void;
}

/** Builds `entry` (relative to the repository) for Lambda and unpacks its zip, as Lambda does into /var/task. */
export async function buildPackage(entry: string, env: Record<string, string> = {}): Promise<Package> {
  const scratch = mkdtempSync(join(tmpdir(), 'micro-fn-lambda-'));
  const cleanup = () => rmSync(scratch, { recursive: true, force: true });
  try {
    const build = await buildLambda(join(root, entry), { outdir: join(scratch, 'out'), env });
    const zip = build.artifacts[0]!.file;
    const taskRoot = join(scratch, 'task');
    unpack(zip, taskRoot);
    return { build, zip, taskRoot, cleanup };
  } catch (err) {
    cleanup(); // a failed build leaves no folder behind
    throw err;
  }
}

/** The key pair the test endpoint accepts (it checks every request's SigV4 signature). */
export const credentials = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' };

/** A LambdaEndpoint (the local Lambda API) on 127.0.0.1, with an SDK client for it. */
export interface TestEndpoint {
  url: string;
  endpoint: LambdaEndpoint;
  client: LambdaClient;
  /** Function output lines, `name requestId line`. */
  logs: string[];
  close(): Promise<void>;
}

export async function startEndpoint(options: { maxEnvironments?: number } = {}): Promise<TestEndpoint> {
  const dir = mkdtempSync(join(tmpdir(), 'micro-fn-lambda-api-'));
  const logs: string[] = [];
  const endpoint = new LambdaEndpoint({
    dir: join(dir, 'functions'),
    maxEnvironments: options.maxEnvironments,
    log: (name, id, line) => logs.push(`${name} ${id} ${line}`),
    // And the placeholder pair the Lambda client signs with for a loopback endpoint when MICRO_FN_HOME holds no
    // credential (runtime/plugins/lambda/client.ts), which these tests' deploys and transports use.
    keys: [
      { ...credentials, invokeOnly: false },
      { accessKeyId: 'micro-fn', secretAccessKey: 'local', invokeOnly: false },
    ],
  });
  const server = createServer((req, res) => endpoint.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = new LambdaClient({ endpoint: url, region: 'us-east-1', credentials, maxAttempts: 1 });
  return {
    url,
    endpoint,
    client,
    logs,
    async close() {
      client.destroy();
      await endpoint.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** SHA-256 as the SDK's signer wants it, from node:crypto. */
class Sha256 {
  readonly #hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof data === 'string') return data;
  return ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : new Uint8Array(data);
}

/**
 * fetch(), signed with SigV4 by the AWS SDK's own signer (not micro-fn's code): for requests the Lambda client does
 * not make, signed right or on purpose wrong (a wrong secret, a stale date).
 */
export async function signedFetch(
  url: string,
  init: { method?: string; body?: string; headers?: Record<string, string>; sentBody?: string } = {},
  keys: { accessKeyId: string; secretAccessKey: string } = credentials,
  signingDate?: Date,
): Promise<Response> {
  const target = new URL(url);
  const signer = new SignatureV4({ credentials: keys, region: 'us-east-1', service: 'lambda', sha256: Sha256 });
  const query: Record<string, string> = {};
  target.searchParams.forEach((v, k) => (query[k] = v));
  const signed = await signer.sign(
    {
      method: init.method ?? 'GET',
      protocol: target.protocol,
      hostname: target.hostname,
      port: Number(target.port),
      path: target.pathname,
      query,
      headers: {
        host: target.host,
        ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...init.headers,
      },
      body: init.body,
    },
    signingDate ? { signingDate } : {},
  );
  const { host: _host, ...headers } = signed.headers;
  // `sentBody`: a body other than the one signed, as an attacker altering a signed request would send.
  return fetch(url, { method: signed.method, headers, body: init.sentBody ?? init.body });
}

/** What a suite of {@link lambdaOnNats} gives its tests. */
export interface LambdaOnNats {
  server: NatsServer;
  api: TestEndpoint;
  /** Deploys `entry` (from the repository's root) with `env` to the local Lambda API. */
  deploy(entry: string, env: Record<string, string>): Promise<DeployedOnNats>;
}

export interface DeployedOnNats {
  zipSize: number;
  /** Invokes `endpoint` of `service` with a JSON request through the Lambda transport; the reply, parsed. */
  call<T>(service: string, endpoint: string, request: unknown): Promise<T>;
}

/**
 * A suite of Lambda functions beside a real nats-server: each test deploys a fixture to the local Lambda API (run
 * under the official runtime interface client, at most `endpoint.maxEnvironments` environments per function) and
 * calls it through the Lambda transport.
 */
export function lambdaOnNats(title: string, endpoint: { maxEnvironments?: number } = {}): Test<LambdaOnNats> {
  const tests = suite<LambdaOnNats>(title);
  let scratch: string;
  const transport = createLambdaTransport({ env: {} });
  tests.before(async (ctx) => {
    [ctx.server, ctx.api] = await Promise.all([startNatsServer(), startEndpoint(endpoint)]);
    scratch = mkdtempSync(join(tmpdir(), 'micro-fn-lambda-nats-'));
    ctx.deploy = async (entry, env) => {
      const deployed = await withTimeout(
        deployLambda({
          entry: join(root, entry),
          outdir: join(scratch, `out-${basename(entry)}`),
          env,
          endpoint: ctx.api.url,
          hostEnv: { MICRO_FN_HOME: scratch },
        }),
        60_000,
        `deploy ${entry}`,
      );
      const node = { id: 'n', address: deployed.address, metadata: { [LAMBDA_ENDPOINT_METADATA]: ctx.api.url } };
      return {
        zipSize: deployed.zip.size,
        async call<T>(service: string, endpoint: string, request: unknown) {
          const response = await transport.call(node, {
            id: randomUUID(),
            service,
            endpoint,
            contentType: 'application/json',
            body: new TextEncoder().encode(JSON.stringify(request)),
            metadata: new Metadata(),
          });
          assert.is(response.error, undefined, JSON.stringify(response.error));
          return JSON.parse(new TextDecoder().decode(response.body)) as T;
        },
      };
    };
  });
  tests.after(async (ctx) => {
    await transport.close();
    await ctx.api?.close();
    await ctx.server?.cleanup();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });
  return tests;
}
