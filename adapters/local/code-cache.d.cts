/** The bytecode file of `script` for this Node. */
export declare function cacheFile(script: string): string;
/**
 * Build-time: readies the script and writes its code cache; undefined (the script removed) when it cannot be used.
 * `everyImport`: every import() goes to the importer runScript is given.
 */
export declare function produce(script: string, everyImport?: boolean): string | undefined;
/** Runs the script beside `bundle` (index.mjs → index.cjs) with its code cache; undefined when there is none. */
export declare function loadBeside(
  bundle: string,
): { exports: Record<string, unknown>; cache: 'accepted' | 'rejected' | 'none' } | undefined;
/** Runs `script` with its code cache, its import()s through `importer`; undefined when it names no hash. */
export declare function runScript(
  script: string,
  importer?: (specifier: string) => Promise<unknown>,
): { exports: Record<string, unknown>; cache: 'accepted' | 'rejected' | 'none' } | undefined;
