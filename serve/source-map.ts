/**
 * Maps stack frames that point into a bundle (`/…/index.mjs:3834:11`) back to the sources it was built from
 * (`/…/index.ts:16:23`), with the linked source map beside the bundle (`index.mjs.map`). Lazy: nothing is read until
 * a frame of a bundle shows up, and a bundle's map is read and decoded once. So maps cost a one-shot function
 * nothing when it starts (Node's `--enable-source-maps` reads and parses the map as the module loads); serve maps
 * what a function writes to its log, and `micro-fn invoke`/`run` the stacks they format (`installStackMapping`).
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A frame's location in a bundle: an absolute path or a file URL ending `.mjs` (or `.cjs`, a local bundle's script
 * run with its code cache), then line and column.
 */
const FRAME = /(file:\/\/)?(\/[^\s()"'`]*?\.[cm]js):(\d+):(\d+)/g;
/** Maps past this size are not read (a map of a bundle is a few MB at most). */
const MAX_MAP_BYTES = 64 * 1024 * 1024;
/** Decoded maps kept (a bundle's build folder never changes: a new build is a new folder). */
const KEEP = 16;

/** One decoded source map: per generated line, its segments as [column, source, line, column] quadruples. */
interface Decoded {
  sources: string[];
  /** Per generated line (0-based), the segments' numbers, sorted by generated column. */
  lines: Int32Array[];
}

export interface StackMapperOptions {
  /**
   * Only bundles under these folders are mapped (default: any). serve passes MICRO_FN_HOME and the temporary folder
   * (the launcher runs functions from copies there): a function cannot make serve read any file it names.
   */
  under?: string[];
}

/** Rewrites bundle frames in text to source frames; reuses each bundle's decoded map. */
export class StackMapper {
  readonly #maps = new Map<string, Decoded | null>();
  readonly #under: string[] | undefined;

  constructor(options: StackMapperOptions = {}) {
    this.#under = options.under?.map((d) => (d.endsWith(sep) ? d : d + sep));
  }

  /** `text` with every frame of a mapped bundle replaced by its source's path, line and column. */
  mapText(text: string): string {
    if (!text.includes('.mjs:') && !text.includes('.cjs:')) return text;
    return text.replace(FRAME, (frame, url: string | undefined, path: string, line: string, column: string) => {
      const file = url ? safeFilePath(`file://${path}`) : path;
      if (file === undefined) return frame;
      const at = this.#locate(file, Number(line), Number(column));
      return at ?? frame;
    });
  }

  /** `source:line:column` for a 1-based line and column of `bundle`, or undefined when it has no map there. */
  #locate(bundle: string, line: number, column: number): string | undefined {
    const map = this.#map(bundle);
    const segments = map?.lines[line - 1];
    if (!map || !segments) return undefined;
    // The last segment starting at or before the column (V8 columns are 1-based, a map's 0-based).
    const target = column - 1;
    let lo = 0;
    let hi = segments.length / 4 - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (segments[mid * 4]! <= target) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return undefined;
    const source = map.sources[segments[found * 4 + 1]!];
    const [sourceLine, sourceColumn] = [segments[found * 4 + 2]!, segments[found * 4 + 3]!];
    if (source === undefined || sourceLine < 0 || sourceColumn < 0) return undefined; // a malformed map
    return `${source}:${sourceLine + 1}:${sourceColumn + 1}`;
  }

  #map(bundle: string): Decoded | null {
    let map = this.#maps.get(bundle);
    if (map !== undefined) return map;
    map = this.#allowed(bundle) ? readMap(`${bundle}.map`) : null;
    if (this.#maps.size >= KEEP) this.#maps.delete(this.#maps.keys().next().value!);
    this.#maps.set(bundle, map);
    return map;
  }

  #allowed(bundle: string): boolean {
    if (!isAbsolute(bundle)) return false;
    const path = resolve(bundle);
    return this.#under === undefined || this.#under.some((d) => path.startsWith(d));
  }
}

/**
 * Formats the stacks of this process's errors with bundle frames mapped to their sources, the way
 * `--enable-source-maps` does but reading a map only when a stack is formatted. For `micro-fn invoke` and `run`,
 * which load a bundle into the CLI's own process. The formatter in place (Node's own, since Node 20.?, or one a
 * library set) still formats; its text is mapped.
 */
export function installStackMapping(mapper = new StackMapper()): void {
  const previous = Error.prepareStackTrace;
  if ((previous as { mapped?: true } | undefined)?.mapped) return;
  const format = (error: Error, sites: NodeJS.CallSite[]): string =>
    mapper.mapText(previous ? String(previous(error, sites)) : defaultFormat(error, sites));
  Error.prepareStackTrace = Object.assign(format, { mapped: true as const });
}

/** V8's own format: the error's text, then a line per frame. */
function defaultFormat(error: Error, sites: NodeJS.CallSite[]): string {
  let head: string;
  try {
    head = Error.prototype.toString.call(error);
  } catch {
    head = '<error>';
  }
  return head + sites.map((site) => `\n    at ${String(site)}`).join('');
}

function safeFilePath(url: string): string | undefined {
  try {
    return fileURLToPath(url);
  } catch {
    return undefined;
  }
}

/** The decoded map at `path`, or null when there is none or it is not a source map version 3. */
function readMap(path: string): Decoded | null {
  try {
    const stat = statSync(path);
    if (!stat.isFile() || stat.size > MAX_MAP_BYTES) return null; // a FIFO would block the read
    const raw = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (!isMap(raw)) return null;
    const base = resolve(dirname(path), raw.sourceRoot ?? '');
    return { sources: raw.sources.map((s) => resolve(base, s)), lines: decodeMappings(raw.mappings) };
  } catch {
    return null; // no map, unreadable, or not JSON: the frame stays as it is
  }
}

interface RawMap {
  version: 3;
  sources: string[];
  sourceRoot?: string;
  mappings: string;
}

function isMap(v: unknown): v is RawMap {
  const m = v as Partial<RawMap> | null;
  return (
    typeof m === 'object' &&
    m !== null &&
    m.version === 3 &&
    Array.isArray(m.sources) &&
    m.sources.every((s) => typeof s === 'string') &&
    typeof m.mappings === 'string' &&
    (m.sourceRoot === undefined || typeof m.sourceRoot === 'string')
  );
}

const BASE64 = new Int8Array(128).fill(-1);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].entries())
  BASE64[c.charCodeAt(0)] = i;

/**
 * Decodes a source map's `mappings` (lines separated by `;`, segments by `,`, each a run of base64 VLQ numbers:
 * generated column, then source, line and column relative to the previous segment's). Segments with no source are
 * left out; a malformed segment ends its line.
 */
export function decodeMappings(mappings: string): Int32Array[] {
  const lines: Int32Array[] = [];
  let source = 0;
  let sourceLine = 0;
  let sourceColumn = 0;
  let i = 0;
  const fields = [0, 0, 0, 0, 0];
  while (i <= mappings.length) {
    let column = 0;
    const out: number[] = [];
    // One generated line.
    while (i < mappings.length && mappings[i] !== ';') {
      let n = 0;
      let bad = false;
      // One segment: up to five VLQ numbers.
      while (i < mappings.length && mappings[i] !== ',' && mappings[i] !== ';') {
        let value = 0;
        let shift = 0;
        let digit: number;
        do {
          const code = mappings.charCodeAt(i++);
          digit = code < 128 ? BASE64[code]! : -1;
          if (digit < 0) {
            bad = true;
            break;
          }
          value += (digit & 31) * 2 ** shift;
          shift += 5;
        } while (digit & 32 && i < mappings.length);
        if (bad) break;
        if (n < 5) fields[n] = value & 1 ? -Math.floor(value / 2) : Math.floor(value / 2);
        n++;
      }
      if (bad) {
        while (i < mappings.length && mappings[i] !== ';') i++;
        break;
      }
      if (n > 0) {
        column += fields[0]!;
        if (n >= 4) {
          source += fields[1]!;
          sourceLine += fields[2]!;
          sourceColumn += fields[3]!;
          out.push(column, source, sourceLine, sourceColumn);
        }
      }
      if (mappings[i] === ',') i++;
    }
    lines.push(Int32Array.from(out));
    i++; // past ';' (or the end)
  }
  return lines;
}
