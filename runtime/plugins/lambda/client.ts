/**
 * Loads `@aws-sdk/client-lambda` when a Lambda function is first deployed or called (never at start-up), and
 * makes its clients. Region, credentials and endpoint come from the standard AWS chain, except for a loopback
 * endpoint, which is micro-fn serve's local Lambda API (it checks SigV4 against its own keys): there a function serve
 * runs signs with the invoke-only pair serve gave it, and any other process with the pair in MICRO_FN_HOME's
 * credential. Another loopback API (LocalStack) with neither gets placeholder credentials when none are configured.
 */
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { UserError, type Env } from '../../core/index.js';
import {
  CREDENTIAL_FILE,
  FUNCTION_AWS_KEY_ID,
  FUNCTION_AWS_SECRET,
  parseCredential,
  type AwsKeyPair,
} from '../../core/credential.js';
import { isLoopback } from '../../core/loopback.js';

export { isLoopback } from '../../core/loopback.js';

export type LambdaSdk = typeof import('@aws-sdk/client-lambda');

/** The SDK, or a UserError saying how to get it. */
export async function loadLambdaSdk(): Promise<LambdaSdk> {
  try {
    // Never bundled: the plugin's descriptor names the package, so a local bundle imports micro-fn's own copy and
    // a Lambda bundle leaves it to the runtime, which provides the SDK.
    return await import('@aws-sdk/client-lambda');
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new UserError(
      `reaching AWS Lambda needs @aws-sdk/client-lambda, which cannot be found from here: npm install @aws-sdk/client-lambda (Lambda's Node.js runtime provides it)`,
      { cause: err },
    );
  }
}

export interface LambdaClientOptions {
  /** Default: the SDK's (AWS_REGION, then the profile's). */
  region?: string;
  /** Another Lambda API than AWS's, e.g. `http://127.0.0.1:52980`. */
  endpoint?: string;
  /** Where AWS_ACCESS_KEY_ID and AWS_PROFILE are looked for (the SDK's chain itself reads process.env). */
  env: Env;
  /** The SDK's attempts per request (default 3); the micro-fn client retries calls itself. */
  maxAttempts?: number;
}

/** A LambdaClient configured by `options`. */
export function createLambdaClient(sdk: LambdaSdk, options: LambdaClientOptions): LambdaClient {
  const local = options.endpoint !== undefined && isLoopback(options.endpoint);
  const credentials = local ? localKeyPair(options.env) : undefined;
  const placeholder = local && !credentials && !options.env.AWS_ACCESS_KEY_ID && !options.env.AWS_PROFILE;
  return new sdk.LambdaClient({
    ...(options.region ? { region: options.region } : {}),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(credentials ? { credentials } : {}),
    ...(placeholder ? { credentials: { accessKeyId: 'micro-fn', secretAccessKey: 'local' } } : {}),
    ...(options.maxAttempts ? { maxAttempts: options.maxAttempts } : {}),
  });
}

/**
 * The key pair for serve's local Lambda API: the invoke-only pair serve gives the functions it runs, else the
 * administrator's pair of the credential in MICRO_FN_HOME (`~/.micro-fn` by default, as the local plugin has it),
 * else none.
 */
export function localKeyPair(env: Env): AwsKeyPair | undefined {
  const accessKeyId = env[FUNCTION_AWS_KEY_ID];
  const secretAccessKey = env[FUNCTION_AWS_SECRET];
  if (accessKeyId && secretAccessKey) return { accessKeyId, secretAccessKey };
  const home = env.MICRO_FN_HOME?.trim() ? resolve(env.MICRO_FN_HOME) : join(homedir(), '.micro-fn');
  const path = join(home, ...CREDENTIAL_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined; // none yet, or not this user's
  }
  return parseCredential(text, path).aws;
}
