/**
 * Loads `@aws-sdk/client-lambda` when a Lambda function is first deployed or called (never at start-up), and
 * makes its clients. Region, credentials and endpoint come from the standard AWS chain, with one addition: a
 * loopback endpoint (micro-fn serve's local Lambda API, LocalStack) checks no signature, so it gets placeholder
 * credentials when none are configured.
 */
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { UserError, type Env } from '../../core/index.js';

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
  const local =
    options.endpoint !== undefined &&
    isLoopback(options.endpoint) &&
    !options.env.AWS_ACCESS_KEY_ID &&
    !options.env.AWS_PROFILE;
  return new sdk.LambdaClient({
    ...(options.region ? { region: options.region } : {}),
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(local ? { credentials: { accessKeyId: 'micro-fn', secretAccessKey: 'local' } } : {}),
    ...(options.maxAttempts ? { maxAttempts: options.maxAttempts } : {}),
  });
}

/** True for `http(s)://127.x.x.x`, `localhost` and `[::1]` URLs. */
export function isLoopback(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}
