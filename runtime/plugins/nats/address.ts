/**
 * Node addresses and the subjects they lead to. One scheme, shared by the listener (which subscribes) and the
 * client (which derives the subject from a node record and a request):
 *
 * - node address   `nats://HOST:PORT/<service>/<node id>` (HOST:PORT: the server the listener is connected to)
 * - per node       `micro.<service>.<node id>.<Service.Method>`: what clients call, so a call to a node
 *                  reaches that node (a one-shot function that refuses with 503 lets the caller try another)
 * - per endpoint   `micro.<service>.<Service.Method>`: the NATS service endpoint in queue group `q`, for
 *                  NATS tooling and callers without a registry (`nats req micro.greeter.Greeter.Hello '{}'`)
 *
 * The node id is the NATS service instance id, the one `$SRV.PING|INFO|STATS.<name>.<id>` answers to.
 */
import { ConfigError } from '../../core/index.js';

export const SUBJECT_ROOT = 'micro';

/** A node address taken apart. */
export interface NatsNode {
  /** `nats://HOST:PORT`: where the node's listener was connected. */
  server: string;
  service: string;
  id: string;
}

/** NATS subject tokens: not empty, no whitespace, no wildcard. Dots separate tokens. */
const TOKENS = /^[^\s.*>]+(?:\.[^\s.*>]+)*$/;

/** True when `name` can be one or more tokens of a subject. */
export function subjectSafe(name: string): boolean {
  return TOKENS.test(name);
}

/** `micro.<service>.<Service.Method>`: the subject of a NATS service endpoint, shared by every instance. */
export function endpointSubject(service: string, endpoint: string): string {
  return `${SUBJECT_ROOT}.${service}.${endpoint}`;
}

/** `micro.<service>.<node id>`: the prefix of the subjects that reach one instance only. */
export function nodeSubjectPrefix(service: string, id: string): string {
  return `${SUBJECT_ROOT}.${service}.${id}`;
}

/** `nats://HOST:PORT/<service>/<node id>`; `server` is `HOST:PORT` as the connection reports it. */
export function nodeAddress(server: string, service: string, id: string): string {
  return `nats://${server}/${encodeURIComponent(service)}/${encodeURIComponent(id)}`;
}

/** The parts of a node address, or undefined when it is not one this transport wrote. */
export function parseNodeAddress(address: string): NatsNode | undefined {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    return undefined;
  }
  const parts = url.pathname.split('/');
  if (url.protocol !== 'nats:' || !url.host || parts.length !== 3) return undefined;
  try {
    const service = decodeURIComponent(parts[1]!);
    const id = decodeURIComponent(parts[2]!);
    if (!subjectSafe(service) || !subjectSafe(id) || id.includes('.')) return undefined;
    return { server: `nats://${url.host}`, service, id };
  } catch {
    return undefined;
  }
}

/**
 * A name as the NATS Services API accepts it (letters, digits, `-`, `_`): go-micro's dotted names
 * (`go.micro.srv.greeter`) and endpoint names (`Greeter.Hello`) become `go_micro_srv_greeter`, `Greeter_Hello`.
 */
export function natsName(name: string): string {
  return name.replace(/[^-\w]/g, '_');
}

/** semver 2.0, as the NATS Services API requires (https://semver.org, the suggested regular expression). */
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

/** The version the NATS service gets: a semver as is; go-micro's `latest` or anything else `0.0.0`. */
export function natsVersion(version: string | undefined): string {
  return version !== undefined && SEMVER.test(version) ? version : '0.0.0';
}

/** Throws a ConfigError unless `service` and each endpoint can be part of a subject. */
export function checkSubjectNames(service: string, endpoints: readonly string[]): void {
  if (!subjectSafe(service)) {
    throw new ConfigError(
      `the service name "${service}" cannot be part of a NATS subject: no spaces, "*" or ">", no empty parts between dots`,
    );
  }
  for (const endpoint of endpoints) {
    if (!subjectSafe(endpoint)) {
      throw new ConfigError(
        `the endpoint "${endpoint}" of ${service} cannot be part of a NATS subject: no spaces, "*" or ">", no empty parts between dots`,
      );
    }
  }
}
