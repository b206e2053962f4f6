/**
 * A function of the local Lambda API as serve records it (serve/state.ts), and the checks it passes when the next
 * serve at the same address restores it: the same as a CreateFunction's (name, runtime, handler, memory, timeout,
 * environment, refused variables), plus its versions, its aliases and its code, which must still be where it was
 * unpacked. A record is the owner's own file (0600 in 0700 folders); the checks keep a hand-edited or damaged one
 * from running code from anywhere else or with variables a create would refuse.
 */
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { ServiceRecord } from '../../runtime/core/registry.js';
import { LOCAL_ACCOUNT, readSettings, type FunctionConfiguration } from './configuration.js';
import type { AliasConfiguration, LambdaFunction, VersionState } from './functions.js';

/** A record whose code is no longer where it was unpacked: nothing can run it again. */
export class CodeGone extends Error {
  override readonly name = 'CodeGone' as const;
}

/** One version as recorded: its configuration and the folder of its code under `<dir>/<name>/`. */
export interface RecordedVersion {
  config: FunctionConfiguration;
  code: string;
}

/** A function as recorded. */
export interface FunctionRecord {
  latest: RecordedVersion;
  versions: RecordedVersion[];
  aliases: AliasConfiguration[];
  lastVersion: number;
  /** The registry entries that name it (serve/lambda/entries.ts). */
  entries: ServiceRecord[];
}

const NAME = /^[a-zA-Z0-9-_]{1,64}$/;
const ALIAS = /^(?!^[0-9]+$)[a-zA-Z0-9-_]{1,128}$/;
const CODE = /^[0-9a-f]{32}$/;
const STATES = new Set(['Pending', 'Active', 'Failed']);

/** What is written for `fn`: everything but its environments. */
export function functionRecord(fn: LambdaFunction): FunctionRecord {
  const version = (state: VersionState): RecordedVersion => ({ config: state.config, code: basename(state.taskRoot) });
  return {
    latest: version(fn.latest),
    versions: [...fn.versions.values()].map(version),
    aliases: [...fn.aliases.values()],
    lastVersion: fn.lastVersion,
    entries: fn.entries,
  };
}

/** The shape of a record as read back; the checks that need the disk are restoredFunction's. */
export function parseFunctionRecord(value: unknown): FunctionRecord {
  const r = value as Partial<FunctionRecord> | null;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.latest !== 'object' ||
    !Array.isArray(r.versions) ||
    !Array.isArray(r.aliases) ||
    !Array.isArray(r.entries) ||
    !Number.isInteger(r.lastVersion)
  )
    throw new Error('it is not the record of a Lambda function');
  return r as FunctionRecord;
}

/** The function `name` of `record`, checked; throws an Error saying what is wrong with it. */
export async function restoredFunction(name: string, record: FunctionRecord, dir: string): Promise<LambdaFunction> {
  if (!NAME.test(name)) throw new Error(`"${name}" is not a function name`);
  const latest = await version(name, record.latest, '$LATEST', dir);
  const versions = new Map<string, VersionState>();
  for (const recorded of record.versions) {
    const number = (recorded as Partial<RecordedVersion>)?.config?.Version;
    if (typeof number !== 'string' || !/^[1-9][0-9]*$/.test(number) || versions.has(number))
      throw new Error(`a version is numbered ${JSON.stringify(number)}`);
    if (Number(number) > record.lastVersion) throw new Error(`version ${number} is past the last one published`);
    versions.set(number, await version(name, recorded, number, dir));
  }
  const aliases = new Map<string, AliasConfiguration>();
  for (const alias of record.aliases) {
    if (typeof alias?.Name !== 'string' || !ALIAS.test(alias.Name)) throw new Error('an alias has no valid name');
    if (alias.FunctionVersion !== '$LATEST' && !versions.has(alias.FunctionVersion))
      throw new Error(`alias ${alias.Name} points at version ${alias.FunctionVersion}, which it does not have`);
    if (alias.AliasArn !== `${latest.config.FunctionArn}:${alias.Name}`)
      throw new Error(`alias ${alias.Name} has the ARN ${alias.AliasArn}`);
    aliases.set(alias.Name, {
      AliasArn: alias.AliasArn,
      Name: alias.Name,
      FunctionVersion: alias.FunctionVersion,
      Description: typeof alias.Description === 'string' ? alias.Description : '',
      RevisionId: String(alias.RevisionId),
    });
  }
  return {
    arn: latest.config.FunctionArn,
    latest,
    versions,
    aliases,
    lastVersion: record.lastVersion,
    entries: record.entries.filter(isEntry),
  };
}

/** One version, checked as a create checks its settings, with its code where it was unpacked. */
async function version(name: string, recorded: RecordedVersion, number: string, dir: string): Promise<VersionState> {
  const config = recorded?.config;
  if (typeof config !== 'object' || config === null) throw new Error(`version ${number} has no configuration`);
  const arn = `arn:aws:lambda:[a-z0-9-]+:${LOCAL_ACCOUNT}:function:${name}${number === '$LATEST' ? '' : `:${number}`}`;
  if (config.FunctionName !== name || config.Version !== number || !new RegExp(`^${arn}$`).test(config.FunctionArn))
    throw new Error(`version ${number} is recorded as ${config.FunctionArn} (${config.Version})`);
  if (!STATES.has(config.State)) throw new Error(`version ${number} is in the state ${JSON.stringify(config.State)}`);
  if (typeof config.CodeSha256 !== 'string' || !Number.isInteger(config.CodeSize))
    throw new Error(`version ${number} has no code hash or size`);
  try {
    readSettings(config as unknown as Record<string, unknown>);
  } catch (err) {
    throw new Error(`version ${number}: ${(err as Error).message}`);
  }
  const code = recorded.code;
  if (typeof code !== 'string' || !CODE.test(code)) throw new Error(`version ${number} names no code folder`);
  const taskRoot = join(dir, name, code);
  if (!(await stat(taskRoot).catch(() => undefined))?.isDirectory())
    throw new CodeGone(`the code of version ${number} is gone from ${taskRoot}`);
  return { config: structuredClone(config), taskRoot };
}

function isEntry(value: unknown): value is ServiceRecord {
  const e = value as ServiceRecord | null;
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof e.name === 'string' &&
    typeof e.version === 'string' &&
    Array.isArray(e.endpoints) &&
    Array.isArray(e.nodes) &&
    e.nodes.every((n) => typeof n?.id === 'string' && typeof n.address === 'string')
  );
}
