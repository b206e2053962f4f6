/**
 * The layers, checked on every import of every source file: imports point down only (cli → serve → adapters →
 * runtime/plugins → runtime/core), no adapter imports another, what ships inside a function's bundle imports no
 * build-time code, and each third-party package is imported only where its owner lives.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { pluginModules } from '../runtime/plugins/catalog.js';

const root = fileURLToPath(new URL('..', import.meta.url));

interface Import {
  /** The importing file, relative to the root. */
  file: string;
  /** As written. */
  specifier: string;
  /** The imported file relative to the root, for a relative import. */
  target?: string;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) out.push(...sources(path));
    else if (/\.(ts|mts)$/.test(name) && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Static imports, re-exports and `import()` with a literal, from the text (comments and strings elsewhere aside). */
function importsOf(file: string): Import[] {
  const text = readFileSync(join(root, file), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');
  const found: Import[] = [];
  const pattern =
    /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;])import\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const match of text.matchAll(pattern)) {
    const specifier = match[1] ?? match[2] ?? match[3]!;
    const target = specifier.startsWith('.')
      ? relative(root, resolve(root, dirname(file), specifier)).replace(/\.js$/, '.ts')
      : undefined;
    found.push({ file, specifier, target });
  }
  return found;
}

const all = ['runtime', 'adapters', 'serve', 'cli', 'examples'].flatMap(sources).flatMap(importsOf);
const under = (path: string | undefined, dir: string) =>
  path !== undefined && (path === dir || path.startsWith(`${dir}/`));
const pkg = (specifier: string) => !specifier.startsWith('.') && !specifier.startsWith('node:');
const packageName = (specifier: string) =>
  specifier
    .split('/')
    .slice(0, specifier.startsWith('@') ? 2 : 1)
    .join('/');
const show = (list: Import[]) => list.map((i) => `${i.file} → ${i.specifier}`).join('\n');

/** The layer a path belongs to; lower numbers are lower layers. */
function layer(path: string): number {
  if (under(path, 'runtime/core')) return 0;
  if (under(path, 'runtime')) return 1;
  if (under(path, 'adapters')) return 2;
  if (under(path, 'serve')) return 3;
  if (under(path, 'cli')) return 4;
  return 5; // examples: checked on their own
}

// ---
const layers = suite('layers');

layers('finds the imports it checks (the scan itself works)', () => {
  assert.ok(all.length > 300, `${all.length} imports`);
  assert.ok(all.some((i) => i.file === 'cli/serve.ts' && i.target === 'serve/runtime.ts'));
});

layers('every relative import points at its own layer or a lower one', () => {
  const up = all.filter((i) => i.target !== undefined && layer(i.target) > layer(i.file));
  assert.equal(up, [], `imports that point up:\n${show(up)}`);
});

layers('runtime/core imports nothing from node: and no package', () => {
  const bad = all.filter(
    (i) => under(i.file, 'runtime/core') && (i.target === undefined || !under(i.target, 'runtime/core')),
  );
  assert.equal(bad, [], show(bad));
});

layers(
  'a plugin folder imports only core and itself; the resolver reaches folders only through their plugin.ts',
  () => {
    const bad = all.filter((i) => {
      if (!under(i.file, 'runtime/plugins') || i.target === undefined || under(i.target, 'runtime/core')) return false;
      const [, , folder, rest] = i.file.split('/');
      const [, , targetFolder, targetRest] = i.target.split('/');
      if (rest === undefined) return targetRest !== undefined && targetRest !== 'plugin.ts'; // resolve.ts, catalog.ts
      return folder !== targetFolder;
    });
    assert.equal(bad, [], show(bad));
  },
);

layers('a plugin imports only the packages its descriptors declare', () => {
  const declared = new Map<string, Set<string>>();
  for (const [folder, module] of Object.entries(pluginFolders())) declared.set(folder, new Set(module));
  const bad = all.filter(
    (i) =>
      under(i.file, 'runtime/plugins') &&
      pkg(i.specifier) &&
      !declared.get(i.file.split('/')[2]!)?.has(packageName(i.specifier)),
  );
  assert.equal(bad, [], show(bad));
});

layers('no adapter imports another; shared build code lives in adapters/kit, which imports no adapter', () => {
  const bad = all.filter((i) => {
    if (!under(i.file, 'adapters') || i.target === undefined || !under(i.target, 'adapters')) return false;
    const from = i.file.split('/')[1]!;
    const to = i.target.split('/')[1]!;
    if (from === 'targets.ts') return !(to === 'kit' || i.target.endsWith('/target.ts'));
    return from !== to && to !== 'kit';
  });
  assert.equal(bad, [], show(bad));
});

layers(
  "what ships in a function's bundle (an adapter's handler.ts and what it imports) imports no build-time code",
  () => {
    const bad: string[] = [];
    for (const handler of all.map((i) => i.file).filter((f) => /^adapters\/[^/]+\/handler\.ts$/.test(f))) {
      const seen = new Set<string>();
      const queue = [handler];
      while (queue.length > 0) {
        const file = queue.shift()!;
        if (seen.has(file)) continue;
        seen.add(file);
        for (const i of all.filter((x) => x.file === file)) {
          if (
            i.specifier === 'esbuild' ||
            under(i.target, 'adapters/kit') ||
            under(i.target, 'serve') ||
            /\/(build|deploy|target)\.ts$/.test(i.target ?? '')
          ) {
            bad.push(`${handler}: ${file} → ${i.specifier}`);
          }
          if (i.target !== undefined && !seen.has(i.target)) queue.push(i.target);
        }
      }
    }
    assert.equal(bad, []);
  },
);

layers('third-party packages are imported only where their owner lives', () => {
  const owners: Record<string, (file: string) => boolean> = {
    esbuild: (f) => under(f, 'adapters/kit'),
    nats: (f) => under(f, 'runtime/plugins/nats'),
    '@aws-sdk/client-lambda': (f) => under(f, 'runtime/plugins/lambda') || f === 'adapters/lambda/deploy.ts',
    jose: (f) => f === 'serve/auth/jwt.ts',
    lmdb: (f) => f === 'serve/store/store.ts',
    '@opentelemetry/api': (f) => under(f, 'runtime/plugins/otel'),
    '@opentelemetry/resources': (f) => under(f, 'runtime/plugins/otel'),
    '@opentelemetry/sdk-trace-base': (f) => under(f, 'runtime/plugins/otel'),
    '@opentelemetry/exporter-trace-otlp-http': (f) => under(f, 'runtime/plugins/otel'),
  };
  const bad = all.filter(
    (i) =>
      pkg(i.specifier) && !i.specifier.startsWith('micro-fn') && !(owners[packageName(i.specifier)]?.(i.file) ?? false),
  );
  assert.equal(bad, [], show(bad));
});

layers('examples import the public API only, as a user would', () => {
  const bad = all.filter((i) => under(i.file, 'examples') && !/^micro-fn(\/|$)/.test(i.specifier));
  assert.equal(bad, [], show(bad));
});

layers.run();

/** Plugin folder → the packages its descriptors declare. */
function pluginFolders(): Record<string, string[]> {
  return Object.fromEntries(
    Object.entries(pluginModules).map(([folder, module]) => [
      folder,
      Object.values(module).flatMap((d) => Object.keys(d.packages ?? {})),
    ]),
  );
}
