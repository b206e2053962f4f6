/**
 * The list operations of the local Lambda API in AWS's shapes: a page of at most 50 items (`MaxItems`, 1 to 10000,
 * fewer when asked) and a `NextMarker` when more follow. A marker names the last item of its page, not a position,
 * so a function created or deleted between two pages neither repeats an item nor skips one that was there all along.
 * https://docs.aws.amazon.com/lambda/latest/api/API_ListFunctions.html
 */
import { apiErrors } from './api-error.js';
import type { FunctionConfiguration } from './configuration.js';
import type { Functions } from './functions.js';

/** Lambda's largest page, whatever MaxItems says. */
export const PAGE = 50;

/**
 * One page of `items` (in their order, each named by a distinct `key`) as `{[field]: [...], NextMarker?}`, after
 * the item `Marker` names; `MaxItems` caps the page.
 */
export function paged<T>(
  field: string,
  items: readonly T[],
  params: URLSearchParams,
  key: (item: T) => string,
): Record<string, unknown> {
  const max = maxItems(params.get('MaxItems'));
  const marker = params.get('Marker');
  let start = 0;
  if (marker !== null) {
    const after = markerKey(marker);
    const index = items.findIndex((item) => key(item) === after);
    // The item the marker names is gone: go on from where it stood (keys sort as the items do).
    start = index >= 0 ? index + 1 : items.findIndex((item) => compare(key(item), after) > 0);
    if (start < 0) start = items.length;
  }
  const page = items.slice(start, start + max);
  const more = start + max < items.length;
  return { [field]: page, ...(more ? { NextMarker: newMarker(key(page.at(-1)!)) } : {}) };
}

/** ListFunctions: `$LATEST` of each function, or with `FunctionVersion=ALL` every version; the subset AWS lists. */
export function listFunctions(fns: Functions, params: URLSearchParams): Record<string, unknown> {
  const version = params.get('FunctionVersion');
  if (version !== null && version !== 'ALL')
    throw apiErrors.validation(
      `1 validation error detected: Value '${version}' at 'functionVersion' failed to satisfy constraint: Member must satisfy enum value set: [ALL]`,
    );
  const configs = fns.list(version === 'ALL').map(subset);
  return paged('Functions', configs, params, (c) => versionKey(c.FunctionName, c.Version));
}

/** What ListFunctions leaves out of a configuration (GetFunction has them). */
function subset(
  config: FunctionConfiguration,
): Omit<
  FunctionConfiguration,
  | 'State'
  | 'StateReason'
  | 'StateReasonCode'
  | 'LastUpdateStatus'
  | 'LastUpdateStatusReason'
  | 'LastUpdateStatusReasonCode'
> {
  const {
    State: _state,
    StateReason: _reason,
    StateReasonCode: _reasonCode,
    LastUpdateStatus: _update,
    LastUpdateStatusReason: _updateReason,
    LastUpdateStatusReasonCode: _updateCode,
    ...rest
  } = config;
  return rest;
}

/** A key that sorts as ListFunctions lists: by name, `$LATEST` first, then versions by number. */
export function versionKey(name: string, version: string): string {
  return `${name}\u0000${version === '$LATEST' ? '0'.padStart(10, '0') : version.padStart(10, '0')}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function maxItems(text: string | null): number {
  if (text === null) return PAGE;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 10000)
    throw apiErrors.validation(
      `1 validation error detected: Value '${text}' at 'maxItems' failed to satisfy constraint: Member must have value ${n < 1 ? 'greater than or equal to 1' : 'less than or equal to 10000'}`,
    );
  return Math.min(n, PAGE);
}

function newMarker(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

function markerKey(marker: string): string {
  const key = /^[A-Za-z0-9_-]{1,400}$/.test(marker) ? Buffer.from(marker, 'base64url').toString('utf8') : '';
  if (!key) throw apiErrors.invalidParameter(`Invalid marker: ${marker.slice(0, 64)}`);
  return key;
}
