// V8's code cache for a local bundle: what every start of a function would compile again, compiled once.
// A local build writes, beside its ES module bundle (index.mjs), the same code as a CommonJS script (index.cjs) that
// ends with a line naming its SHA-256 (`//# micro-fn-bundle <hex>`), and the bytecode V8 made of it
// (index.cjs.<node version>-<arch>.cache), headed by that hash. A start loads index.cjs with `vm.Script` and the
// cache: V8 then skips parsing the whole file and compiling its top level. The build's cache holds the top level
// only; the first process that runs the script and may write beside it replaces it, as it exits, with the bytecode
// of every function it ran (module initialisation, the invocation). The cache is used only when its header names the
// script's hash (the build's: a script edited by hand without a rebuild is not detected unless its length changed)
// and its file name this Node's version and architecture; V8 itself refuses bytecode of another V8 build, of other
// V8 flags or of a source of another length; anything refused is compiled from source, as without a cache.
// Plain CommonJS: serve/bootstrap.cjs runs it under plain `node`, before anything of the function is loaded.
'use strict';
const { accessSync, constants, readFileSync, renameSync, rmSync, writeFileSync } = require('node:fs');
const Module = require('node:module');
const { dirname } = require('node:path');
const vm = require('node:vm');

/**
 * The script runs as a CommonJS module's function; on a line of its own, so line numbers stay the file's. `__mfIm`
 * stands for `import()`: on Node 20 a vm.Script's own import() fails once its code comes from a cache (the callback
 * is not found: ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING), and the callback that would do it prints an
 * ExperimentalWarning. So produce() renames each `import("node:…")` and `import("file:///…")` of the script (what
 * the build left outside it: absolute, so resolved the same from here) to `__mfIm(`, the same length, so the source
 * map's columns still hold; a script with any other import() is not used.
 */
const WRAPPER = '(function (exports, require, module, __filename, __dirname, __mfIm) {\n';
/** @param {string} specifier */
const dynamicImport = (specifier) => import(specifier);
const HASH_LINE = '\n//# micro-fn-bundle ';
const MAGIC = 'micro-fn code cache 1';

/**
 * The cache file of `script` for this Node.
 * @param {string} script
 */
function cacheFile(script) {
  return `${script}.${process.version}-${process.arch}.cache`;
}

/**
 * The hash the script's last line names, or undefined.
 * @param {string} source
 */
function scriptHash(source) {
  const at = source.lastIndexOf(HASH_LINE);
  if (at < 0) return undefined;
  const hash = source.slice(at + HASH_LINE.length).trimEnd();
  return /^[0-9a-f]{64}$/.test(hash) ? hash : undefined;
}

/**
 * @param {string} script
 * @param {string} source
 * @param {Buffer | undefined} cachedData
 */
function compile(script, source, cachedData) {
  return new vm.Script(`${WRAPPER}${source}\n})`, {
    filename: script,
    lineOffset: -1,
    cachedData,
  });
}

/**
 * The bytecode in the cache file of `script` when its header names `hash`, and how it was made: `build` (compiled,
 * nothing run: the top level only) or `run` (after a process ran the script: every function it called too).
 * @param {string} script
 * @param {string} hash
 * @returns {{ data: Buffer, grade: string } | undefined}
 */
function readCache(script, hash) {
  let data;
  try {
    data = readFileSync(cacheFile(script));
  } catch {
    return undefined;
  }
  const end = data.indexOf(10);
  const header = end < 0 ? [] : data.toString('latin1', 0, end).split(' ');
  const grade = header.pop();
  if (header.join(' ') !== `${MAGIC} ${hash}` || (grade !== 'build' && grade !== 'run') || end + 1 >= data.length)
    return undefined;
  return { data: data.subarray(end + 1), grade };
}

/**
 * @param {string} script
 * @param {string} hash
 * @param {'build' | 'run'} grade
 * @param {Buffer} data
 */
function writeCache(script, hash, grade, data) {
  writeAtomically(cacheFile(script), Buffer.concat([Buffer.from(`${MAGIC} ${hash} ${grade}\n`, 'latin1'), data]));
}

/**
 * Build-time: renames the script's import() calls (see WRAPPER) and names its SHA-256 on its last line, then writes
 * its code cache for the Node that runs this (each file written to a temporary name and renamed, so a start never
 * reads half of one). Nothing of the script runs. Returns the cache file; undefined, with the script and its map
 * removed, when the script holds an import() of something else (the bundle is then imported as a module).
 * `everyImport`: every import() is renamed, whatever it imports: for a script whose runner passes an importer that
 * resolves what the script names from the script's own place (runScript's `importer`), as the CLI's bin does.
 * @param {string} script
 * @param {boolean} [everyImport]
 * @returns {string | undefined}
 */
function produce(script, everyImport = false) {
  let source = readFileSync(script, 'utf8');
  if (scriptHash(source) === undefined) {
    source = everyImport
      ? source.replace(/(?<![\w$.])import\(/g, '__mfIm(')
      : source.replace(/(?<![\w$.])import\((["'])([^"'\\]+)\1\)/g, (call, quote, specifier) =>
          specifier.startsWith('file:///') || Module.isBuiltin(specifier)
            ? `__mfIm(${quote}${specifier}${quote})`
            : call,
        );
    if (/(?<![\w$.])import\s*\(/.test(source)) {
      rmSync(script, { force: true });
      rmSync(`${script}.map`, { force: true });
      return undefined;
    }
    const { createHash } = require('node:crypto');
    source += `${HASH_LINE}${createHash('sha256').update(source).digest('hex')}\n`;
    writeAtomically(script, source);
  }
  const hash = /** @type {string} */ (scriptHash(source));
  writeCache(script, hash, 'build', compile(script, source, undefined).createCachedData());
  return cacheFile(script);
}

/**
 * @param {string} file
 * @param {string | Buffer} data
 */
function writeAtomically(file, data) {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data, { mode: 0o644 });
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Runs the CommonJS script beside an ES module bundle (`index.mjs` → `index.cjs`) as a module of its own, with its
 * code cache when one fits, and returns its exports; undefined when there is no script a local build wrote (one that
 * names its hash): the caller imports the bundle then. `cache`: 'accepted' (V8 took the bytecode), 'rejected' (V8
 * refused it: compiled from source), 'none'. What the script throws as it runs is thrown.
 * @param {string} bundle
 * @returns {{ exports: Record<string, unknown>, cache: 'accepted' | 'rejected' | 'none' } | undefined}
 */
function loadBeside(bundle) {
  if (!bundle.endsWith('.mjs')) return undefined;
  const script = `${bundle.slice(0, -'.mjs'.length)}.cjs`;
  let source;
  try {
    source = readFileSync(script, 'utf8');
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code === 'ENOENT') return undefined;
    throw err;
  }
  return run(script, source, dynamicImport);
}

/**
 * Runs `script`, one that produce() named the hash of, as a module of its own with its code cache when one fits, as
 * loadBeside does; undefined when the script names no hash. `importer` stands for the script's import() (see WRAPPER;
 * default: what this file imports, for the `node:` and `file:///` specifiers a bundle's script keeps). A script that
 * is not there throws ENOENT.
 * @param {string} script
 * @param {(specifier: string) => Promise<unknown>} [importer]
 * @returns {{ exports: Record<string, unknown>, cache: 'accepted' | 'rejected' | 'none' } | undefined}
 */
function runScript(script, importer = dynamicImport) {
  return run(script, readFileSync(script, 'utf8'), importer);
}

/**
 * @param {string} script
 * @param {string} source
 * @param {(specifier: string) => Promise<unknown>} importer
 * @returns {{ exports: Record<string, unknown>, cache: 'accepted' | 'rejected' | 'none' } | undefined}
 */
function run(script, source, importer) {
  const hash = scriptHash(source);
  if (hash === undefined) return undefined; // not a script a local build wrote
  const cached = readCache(script, hash);
  const compiled = compile(script, source, cached?.data);
  const mod = new Module(script);
  mod.filename = script;
  // @ts-expect-error: internal, the folders a require() from the script searches (as Node's own loader sets them)
  mod.paths = Module._nodeModulePaths(dirname(script));
  // A later require() or import() of the script is this module, not a second copy.
  Module._cache[script] = mod;
  const dir = dirname(script);
  const wrapper = compiled.runInThisContext();
  try {
    wrapper.call(mod.exports, mod.exports, Module.createRequire(script), mod, script, dir, importer);
  } catch (err) {
    delete Module._cache[script]; // as Node's loader does with a module that threw
    throw err;
  }
  mod.loaded = true;
  const cache = cached === undefined ? 'none' : compiled.cachedDataRejected ? 'rejected' : 'accepted';
  // The first process to run the script leaves, as it exits (its reply given), the bytecode of every function it
  // ran, for the starts after it; where it may write beside the script (not a function user's read-only copy).
  // Asked first: the bytecode of a large bundle takes milliseconds of CPU to serialize, for nothing where the write
  // would fail (every process of a function user would pay them as it exits).
  if ((cache !== 'accepted' || cached?.grade !== 'run') && writable(dir))
    process.once('exit', () => {
      try {
        writeCache(script, hash, 'run', compiled.createCachedData());
      } catch {
        // read-only: the build's cache stays
      }
    });
  return { exports: mod.exports, cache };
}

/**
 * Whether this process may write into `dir`.
 * @param {string} dir
 */
function writable(dir) {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

module.exports = { cacheFile, loadBeside, produce, runScript };
