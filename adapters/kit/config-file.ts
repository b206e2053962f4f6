/**
 * Bundles the JSON file shipped with a function (`config.json` in its entry's folder) into its bundle, as the
 * middle layer of `ctx.config`: runtime/core/config-file.ts is replaced by a module that imports the file (so it is
 * one of the bundle's inputs, and a cached bundle is built again when it changes). A function without the file
 * gets a module that exports nothing. Build-time only.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plugin } from 'esbuild';
import { packageRoot } from './package-root.js';

/** The file's name, in the folder of the function's entry. */
export const CONFIG_FILE = 'config.json';

/** Where the config file of the function whose entry is in `folder` is. */
export function configFileOf(folder: string): string {
  return join(folder, CONFIG_FILE);
}

/** The esbuild plugin that gives runtime/core/config-file.ts the function's `config.json`, checked to be an object. */
export function configFilePlugin(folder: string, root = packageRoot()): Plugin {
  const module = join(root, 'runtime', 'core', 'config-file.ts');
  const file = configFileOf(folder);
  return {
    name: 'micro-fn-config-file',
    setup(build) {
      build.onResolve({ filter: /[\\/]config-file\.(js|ts)$/ }, (args) =>
        join(args.resolveDir, args.path).replace(/\.js$/, '.ts') === module
          ? { path: module, namespace: 'micro-fn-config-file' }
          : undefined,
      );
      build.onLoad({ filter: /.*/, namespace: 'micro-fn-config-file' }, () => {
        if (!existsSync(file)) return { contents: 'export const configFile = undefined;', loader: 'js' };
        let parsed: unknown;
        try {
          parsed = JSON.parse(readFileSync(file, 'utf8'));
        } catch (err) {
          return { errors: [{ text: `${file} is not JSON: ${(err as Error).message}` }] };
        }
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
          return { errors: [{ text: `${file} must hold a JSON object of keys, like {"greeting": "Hello"}` }] };
        return {
          contents: `import configFile from ${JSON.stringify(file)};\nexport { configFile };`,
          loader: 'js',
          resolveDir: folder,
        };
      });
    },
  };
}
