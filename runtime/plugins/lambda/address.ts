/**
 * Lambda node addresses, `lambda://REGION/NAME[:QUALIFIER]`: how the registry says "invoke this function".
 * No `node:` import.
 */

/** A Lambda function as a node address names it. */
export interface LambdaAddress {
  region: string;
  /** The function name. */
  name: string;
  /** An alias or a version; absent means `$LATEST`. */
  qualifier?: string;
}

/**
 * Node metadata naming the Lambda API a function lives behind when it is not AWS's own (micro-fn serve's
 * local endpoint, LocalStack): `micro-fn deploy --endpoint` records it, so callers need no setting.
 */
export const LAMBDA_ENDPOINT_METADATA = 'lambda-endpoint';

/**
 * Node metadata of a function whose Lambda handler streams its replies (it has a server stream; `micro-fn deploy`
 * sets it to "true"): the transport calls it with InvokeWithResponseStream, every endpoint of it.
 */
export const LAMBDA_STREAMING_METADATA = 'lambda-response-stream';

const PATTERN = /^lambda:\/\/([a-z0-9-]+)\/([A-Za-z0-9_-]{1,64})(?::([A-Za-z0-9_$-]{1,128}))?\/?$/;

/** The parts of a `lambda://` address, or undefined when it is not one. */
export function parseLambdaAddress(address: string): LambdaAddress | undefined {
  const match = PATTERN.exec(address);
  if (!match) return undefined;
  return { region: match[1]!, name: match[2]!, ...(match[3] ? { qualifier: match[3] } : {}) };
}

/** `lambda://us-east-1/helloworld:live` */
export function formatLambdaAddress({ region, name, qualifier }: LambdaAddress): string {
  return `lambda://${region}/${name}${qualifier ? `:${qualifier}` : ''}`;
}
