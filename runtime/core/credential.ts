/**
 * The credential of `micro-fn serve`: what it is made of and where it lives under MICRO_FN_HOME. serve creates it on
 * its first start (runtime/plugins/local/credential.ts); the CLI, the local broker and the Lambda client on the same
 * machine read it. The format is here, below every plugin, because the local and the Lambda plugins both read it and
 * neither may import the other. No I/O here: each reader opens the file itself.
 */
import { UserError } from './errors.js';

/** An AWS access key pair for serve's local Lambda API (SigV4). */
export interface AwsKeyPair {
  accessKeyId: string;
  secretAccessKey: string;
}

/** What `MICRO_FN_HOME/auth/credential.json` holds (mode 0600, in a folder of mode 0700). */
export interface Credential {
  /** Sent as `Authorization: Bearer …` on every call to serve's control service. 256 random bits. */
  control: string;
  /** Signs the JWTs `serve --auth` checks (HS256). 256 random bits, base64url. */
  jwtKey: string;
  /** The local Lambda API's administrator pair: every operation. */
  aws: AwsKeyPair;
  /** The pair serve gives the functions it runs: Invoke only. */
  awsInvoke: AwsKeyPair;
}

/** The credential file, relative to MICRO_FN_HOME. */
export const CREDENTIAL_FILE = ['auth', 'credential.json'] as const;

/** Variables serve gives every function it runs: the invoke-only pair for its local Lambda API. */
export const FUNCTION_AWS_KEY_ID = 'MICRO_FN_AWS_ACCESS_KEY_ID';
export const FUNCTION_AWS_SECRET = 'MICRO_FN_AWS_SECRET_ACCESS_KEY';

/**
 * The token a process sends on its calls and publishes when its caller gave none (go-micro's service account):
 * `serve --auth` gives each function it runs one; a user sets it to call through an `--auth` gateway.
 */
export const AUTH_TOKEN_ENV = 'MICRO_AUTH_TOKEN';

/** Parses the credential file's text; `where` names the file in the error. */
export function parseCredential(text: string, where: string): Credential {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const c = value as Partial<Credential> | undefined;
  const pair = (p: unknown): p is AwsKeyPair =>
    typeof (p as AwsKeyPair | undefined)?.accessKeyId === 'string' &&
    typeof (p as AwsKeyPair | undefined)?.secretAccessKey === 'string';
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.control !== 'string' ||
    c.control.length < 32 ||
    typeof c.jwtKey !== 'string' ||
    c.jwtKey.length < 32 ||
    !pair(c.aws) ||
    !pair(c.awsInvoke)
  )
    throw new UserError(
      `${where} is not a micro-fn credential: remove it and start micro-fn serve again, which makes a new one`,
    );
  return { control: c.control, jwtKey: c.jwtKey, aws: c.aws, awsInvoke: c.awsInvoke };
}
