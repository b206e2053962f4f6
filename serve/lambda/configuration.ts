/**
 * A function's configuration as the local Lambda API keeps and returns it (`FunctionConfiguration`, AWS's
 * field names, so the AWS SDK reads it as it reads Lambda's), and the checks of the requests that set it.
 */
import { randomUUID } from 'node:crypto';
import { refusedEnvProblem } from '../../runtime/plugins/local/refused-env.js';
import { apiErrors } from './api-error.js';

/** The account id in the ARNs of the local endpoint. */
export const LOCAL_ACCOUNT = '000000000000';

/** The part of Lambda's `FunctionConfiguration` the local endpoint keeps. */
export interface FunctionConfiguration {
  FunctionName: string;
  FunctionArn: string;
  Runtime: string;
  Role: string;
  Handler: string;
  CodeSize: number;
  CodeSha256: string;
  Description: string;
  Timeout: number;
  MemorySize: number;
  LastModified: string;
  Version: string;
  Environment?: { Variables: Record<string, string> };
  RevisionId: string;
  State: 'Pending' | 'Active' | 'Failed';
  StateReason?: string;
  StateReasonCode?: string;
  LastUpdateStatus?: 'InProgress' | 'Successful' | 'Failed';
  LastUpdateStatusReason?: string;
  LastUpdateStatusReasonCode?: string;
  PackageType: 'Zip';
  Architectures: string[];
  EphemeralStorage: { Size: number };
  TracingConfig: { Mode: string };
  LoggingConfig: { LogFormat: string; LogGroup: string };
}

/** The settings a create or a configuration update may change. */
export type Settings = Pick<
  FunctionConfiguration,
  'Runtime' | 'Role' | 'Handler' | 'Description' | 'Timeout' | 'MemorySize' | 'Environment' | 'Architectures'
>;

/** The instruction set architectures Lambda takes (`Architectures` holds exactly one). */
export const ARCHITECTURES = ['x86_64', 'arm64'] as const;

/** `arn:aws:lambda:REGION:000000000000:function:NAME` */
export function functionArn(region: string, name: string): string {
  return `arn:aws:lambda:${region}:${LOCAL_ACCOUNT}:function:${name}`;
}

/** Lambda's timestamp format: `2024-05-01T12:00:00.000+0000`. */
export function lastModified(): string {
  return new Date().toISOString().replace('Z', '+0000');
}

/** A new configuration, `Pending` until its first environment is ready. */
export function newConfiguration(
  region: string,
  name: string,
  settings: Settings,
  code: { sha256: string; size: number },
): FunctionConfiguration {
  return {
    FunctionName: name,
    FunctionArn: functionArn(region, name),
    ...settings,
    CodeSize: code.size,
    CodeSha256: code.sha256,
    LastModified: lastModified(),
    Version: '$LATEST',
    RevisionId: randomUUID(),
    State: 'Pending',
    StateReason: 'The function is being created.',
    StateReasonCode: 'Creating',
    PackageType: 'Zip',
    EphemeralStorage: { Size: 512 },
    TracingConfig: { Mode: 'PassThrough' },
    LoggingConfig: { LogFormat: 'Text', LogGroup: `/aws/lambda/${name}` },
  };
}

/** Checks a CreateFunction request; `existing` is absent there and holds the current settings for an update. */
export function readSettings(body: Record<string, unknown>, existing?: Settings): Settings {
  const text = (field: string, fallback?: string): string => {
    const value = body[field] ?? fallback;
    if (typeof value !== 'string' || value === '')
      throw apiErrors.invalidParameter(`${field} is required and must be a string`);
    return value;
  };
  const whole = (field: string, min: number, max: number, fallback: number): number => {
    const value = body[field] ?? fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw apiErrors.invalidParameter(
        `1 validation error detected: Value '${String(value)}' at '${field[0]!.toLowerCase()}${field.slice(1)}' failed to satisfy constraint: Member must have value between ${min} and ${max}`,
      );
    }
    return value;
  };
  const runtime = text('Runtime', existing?.Runtime);
  if (!runtime.startsWith('nodejs'))
    throw apiErrors.invalidParameter(
      `the local Lambda endpoint of micro-fn serve runs Node.js functions only (nodejs20.x, nodejs22.x, ...); got ${runtime}`,
    );
  const description = body.Description ?? existing?.Description ?? '';
  if (typeof description !== 'string') throw apiErrors.invalidParameter('Description must be a string');
  return {
    Runtime: runtime,
    Role: text('Role', existing?.Role),
    Handler: text('Handler', existing?.Handler),
    Description: description,
    Timeout: whole('Timeout', 1, 900, existing?.Timeout ?? 3),
    MemorySize: whole('MemorySize', 128, 10240, existing?.MemorySize ?? 128),
    ...readEnvironment(body.Environment, existing?.Environment),
    Architectures: readArchitectures(body.Architectures, existing?.Architectures),
  };
}

/**
 * `Architectures`, kept as given (the local endpoint runs every function on the host's own architecture); absent, the
 * current one or x86_64. Anything else is refused in Lambda's words, a ValidationException.
 */
export function readArchitectures(value: unknown, existing: readonly string[] = ['x86_64']): string[] {
  if (value === undefined || value === null) return [...existing];
  const shown = Array.isArray(value) ? `[${value.map(String).join(', ')}]` : String(value);
  if (!Array.isArray(value) || value.length !== 1)
    throw apiErrors.validation(
      `1 validation error detected: Value '${shown}' at 'architectures' failed to satisfy constraint: Member must have length less than or equal to 1`,
    );
  if (!(ARCHITECTURES as readonly unknown[]).includes(value[0]))
    throw apiErrors.validation(
      `1 validation error detected: Value '${shown}' at 'architectures' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [${ARCHITECTURES.join(', ')}], Member must not be null]`,
    );
  return [value[0] as string];
}

function readEnvironment(value: unknown, existing: Settings['Environment']): Pick<Settings, 'Environment'> {
  if (value === undefined) return existing ? { Environment: existing } : {};
  const variables = (value as { Variables?: unknown } | null)?.Variables ?? {};
  if (
    typeof variables !== 'object' ||
    variables === null ||
    Object.values(variables).some((v) => typeof v !== 'string')
  ) {
    throw apiErrors.invalidParameter('Environment.Variables must map names to strings');
  }
  // What would run code before the function's process is confined (runtime/plugins/local/refused-env.ts). All but
  // NODE_OPTIONS=--enable-source-maps, which micro-fn's Lambda deploy sets (AWS's way to map stack traces).
  const { NODE_OPTIONS: nodeOptions, ...others } = variables as Record<string, string>;
  const refused = refusedEnvProblem(
    nodeOptions === '--enable-source-maps' ? others : (variables as Record<string, string>),
  );
  if (refused) throw apiErrors.invalidParameter(refused);
  return { Environment: { Variables: { ...(variables as Record<string, string>) } } };
}

/** What decides whether PublishVersion makes a new version: the code and the settings. */
export function fingerprint(config: FunctionConfiguration): string {
  const { CodeSha256, Runtime, Role, Handler, Description, Timeout, MemorySize, Environment, Architectures } = config;
  return JSON.stringify([
    CodeSha256,
    Architectures,
    Runtime,
    Role,
    Handler,
    Description,
    Timeout,
    MemorySize,
    Environment?.Variables ?? {},
  ]);
}
