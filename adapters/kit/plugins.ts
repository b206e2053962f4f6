/**
 * Bundles exactly the runtime plugins a configuration selects. runtime/plugins/resolve.ts reads its descriptors
 * from runtime/plugins/catalog.ts; in a bundle, that module is replaced by one that imports only the selected
 * descriptors, so a plugin that is not chosen (and its package) is not in the bundle at all. The packages of the
 * chosen ones are bundled, substituted for the platform (`nats` → `nats.ws` on the Web), or, for a bundle that
 * runs on this machine, imported from where micro-fn has them. Build-time only.
 */
import { createRequire } from 'node:module';
import { join, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Plugin } from 'esbuild';
import { BUILD_CONSTANTS } from '../../runtime/core/build-constants.js';
import type { Env, Platform, PluginDescriptor } from '../../runtime/core/index.js';
import { pluginModules } from '../../runtime/plugins/catalog.js';
import { available, selectPlugins } from '../../runtime/plugins/resolve.js';
import { packageRoot } from './package-root.js';

export interface PluginSelection {
  platform: Platform;
  /**
   * The function's configuration when it is known at build time (Lambda, Workers, Deno): only what it selects is
   * bundled. Absent: every plugin of the platform (a local bundle reads its configuration when it runs).
   */
  env?: Env;
  /**
   * `bundle` (default): packages go into the bundle. `external`: imported from micro-fn's own node_modules, by
   * absolute URL (the bundle runs on this machine; bundling them would make every cold start parse them).
   */
  packages?: 'bundle' | 'external';
}

/** The descriptors a selection carries. */
export function selected(selection: PluginSelection): PluginDescriptor[] {
  if (selection.env) return selectPlugins(selection.env, selection.platform);
  return (['registry', 'broker', 'transport', 'exporter', 'store', 'sync', 'config'] as const).flatMap((kind) =>
    available(kind, selection.platform),
  );
}

/**
 * The build constants a selection sets (runtime/core/build-constants.ts): a configuration known at build time that
 * selects no trace exporter leaves out the code that looks for one.
 */
export function selectionDefines(selection: PluginSelection): Record<string, string> {
  const exporter = selection.env && selected(selection).some((d) => d.kind === 'exporter');
  return selection.env && !exporter ? { [BUILD_CONSTANTS.noExporter]: 'true' } : {};
}

/**
 * The esbuild plugin that carries `selection`'s plugins and their packages; no store plugin (nor its client) when
 * `define` leaves the store out (the function never touches `ctx.store`: adapters/kit/unused.ts), no config plugin
 * when it leaves config out, and only a trace exporter when it leaves the client out (the function never calls out:
 * nothing would open the others).
 */
export function pluginsPlugin(
  selection: PluginSelection,
  root = packageRoot(),
  define?: Record<string, string>,
): Plugin {
  const noStore = define?.[BUILD_CONSTANTS.noStore] === 'true';
  const noConfig = define?.[BUILD_CONSTANTS.noConfig] === 'true';
  const noClient = define?.[BUILD_CONSTANTS.noClient] === 'true';
  const chosen = new Set(
    selected(selection).filter(
      (d) =>
        !(noStore && d.kind === 'store') && !(noConfig && d.kind === 'config') && !(noClient && d.kind !== 'exporter'),
    ),
  );
  const catalog = join(root, 'runtime', 'plugins', 'catalog.ts');
  const lines: string[] = [];
  const folders: string[] = [];
  for (const [folder, module] of Object.entries(pluginModules)) {
    const names = Object.entries(module)
      .filter(([, d]) => chosen.has(d))
      .map(([name]) => name);
    if (names.length === 0) continue;
    lines.push(
      `import { ${names.join(', ')} } from ${JSON.stringify(join(root, 'runtime', 'plugins', folder, 'plugin.ts'))};`,
    );
    folders.push(`${JSON.stringify(folder)}: { ${names.join(', ')} }`); // a folder may be `cloudflare-kv`
  }
  const describe = [...chosen].map((d) => `${d.kind} ${d.name}`).join(', ');
  lines.push(`export const pluginModules = { ${folders.join(', ')} };`);
  lines.push(`export const bundled = ${JSON.stringify(describe)};`);
  const contents = lines.join('\n');
  const packages = packagesOf(chosen, selection.platform);
  const require = createRequire(join(root, 'package.json'));
  const runtimeDir = join(root, 'runtime') + sep;
  return {
    name: 'micro-fn-plugins',
    setup(build) {
      build.onResolve({ filter: /[\\/]catalog\.(js|ts)$/ }, (args) =>
        join(args.resolveDir, args.path).replace(/\.js$/, '.ts') === catalog
          ? { path: catalog, namespace: 'micro-fn-plugins' }
          : undefined,
      );
      build.onLoad({ filter: /.*/, namespace: 'micro-fn-plugins' }, () => ({
        contents,
        resolveDir: root,
        loader: 'ts',
      }));
      if (packages.size === 0) return;
      const filter = new RegExp(`^(${[...packages.keys()].map(escape).join('|')})$`);
      build.onResolve({ filter }, async (args) => {
        if (args.pluginData === USER_IMPORT) return undefined;
        const target = packages.get(args.path)!;
        if (selection.packages === 'external' && !args.importer.startsWith(runtimeDir)) {
          // The function's own import of a package a plugin also uses (its AWS SDK client): bundled like any other
          // package it imports (from its folder, else from beside micro-fn), since its code runs on every start
          // and is compiled with the bundle's code cache; only the plugins' lazy imports stay outside.
          const own = await build.resolve(args.path, {
            kind: args.kind,
            resolveDir: args.resolveDir,
            pluginData: USER_IMPORT,
          });
          if (own.errors.length === 0) return { path: own.path };
          const beside = await build.resolve(target, { kind: args.kind, resolveDir: root, pluginData: USER_IMPORT });
          if (beside.errors.length === 0) return { path: beside.path };
          return undefined;
        }
        if (selection.packages === 'external') {
          try {
            return { path: pathToFileURL(require.resolve(target)).href, external: true };
          } catch {
            return undefined; // not installed beside micro-fn: let esbuild find it from the function's folder
          }
        }
        if (target === args.path) return undefined;
        const found = await build.resolve(target, { kind: args.kind, resolveDir: root });
        if (found.errors.length > 0)
          return {
            errors: [
              {
                text: `the ${selection.platform} build needs the ${target} package beside micro-fn (for ${args.path}): npm install ${target}`,
              },
            ],
          };
        return { path: found.path };
      });
    },
  };
}

/** Marks esbuild's own resolution of a function's import, so this plugin leaves it to esbuild. */
// Not `user import'`: test/layers.test.ts reads the word import before a quote as an import statement.
const USER_IMPORT = Symbol('micro-fn import by the user');

/** Package name → what this platform imports instead (itself when nothing is substituted). */
function packagesOf(chosen: Iterable<PluginDescriptor>, platform: Platform): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of chosen)
    for (const [name, instead] of Object.entries(d.packages ?? {})) out.set(name, instead[platform] ?? name);
  return out;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
