/** The bytecode file of `script` for this Node. */
export declare function cacheFile(script: string): string;
/** Build-time: readies the script and writes its code cache; undefined (the script removed) when it cannot be used. */
export declare function produce(script: string): string | undefined;
/** Runs the script beside `bundle` (index.mjs → index.cjs) with its code cache; undefined when there is none. */
export declare function loadBeside(
  bundle: string,
): { exports: Record<string, unknown>; cache: 'accepted' | 'rejected' | 'none' } | undefined;
