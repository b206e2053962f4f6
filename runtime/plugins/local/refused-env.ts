/**
 * The environment variables a function may not declare for `micro-fn serve`: those that change how Node, its module
 * loader, OpenSSL, libuv or the C library's dynamic loader start a process, and micro-fn's own internals. Set in a
 * function's environment, `NODE_OPTIONS=--import=data:…` or `LD_PRELOAD=…` would run code before micro-fn has
 * confined the process (serve/launcher.ts). serve refuses them at `Runtime.Deploy` and in the local Lambda API, and
 * the CLI before it builds. A function that needs one of Node's settings puts it in its code instead. No I/O.
 */

/** Refused by exact name. */
export const REFUSED_ENV_NAMES: readonly string[] = [
  // Node: flags, module resolution, preloaded data, coverage and cache files, its own IPC and cluster channels.
  'NODE_OPTIONS',
  'NODE_PATH',
  'NODE_EXTRA_CA_CERTS',
  'NODE_ICU_DATA',
  'NODE_REPL_EXTERNAL_MODULE',
  'NODE_V8_COVERAGE',
  'NODE_COMPILE_CACHE',
  'NODE_PRESERVE_SYMLINKS',
  'NODE_REDIRECT_WARNINGS',
  'NODE_CHANNEL_FD',
  'NODE_CHANNEL_SERIALIZATION_MODE',
  'NODE_UNIQUE_ID',
  'NODE_TEST_CONTEXT',
  // OpenSSL loads its configuration, engines and providers (shared objects) as Node starts.
  'OPENSSL_CONF',
  'OPENSSL_ENGINES',
  'OPENSSL_MODULES',
  // glibc: allocator and loader tunables, character-set converters loaded as shared objects.
  'GLIBC_TUNABLES',
  'GCONV_PATH',
];

/** Refused by prefix: the dynamic loader (Linux, macOS), libuv, and micro-fn's internals (`MICRO_FN_IPC`, ...). */
export const REFUSED_ENV_PREFIXES: readonly string[] = ['LD_', 'DYLD_', 'UV_', 'MICRO_FN_'];

/** The names in `names` a function may not declare, in their order. */
export function refusedEnv(names: Iterable<string>): string[] {
  const exact = new Set(REFUSED_ENV_NAMES);
  return [...names].filter((name) => exact.has(name) || REFUSED_ENV_PREFIXES.some((p) => name.startsWith(p)));
}

/** One sentence naming the variables of `env` that are refused, and what to do; undefined when there are none. */
export function refusedEnvProblem(env: Readonly<Record<string, unknown>> | undefined): string | undefined {
  const refused = refusedEnv(Object.keys(env ?? {}));
  if (refused.length === 0) return undefined;
  const [verb, subject, object] = refused.length === 1 ? ['is', 'it', 'it'] : ['are', 'they', 'them'];
  return `${refused.join(', ')} ${verb} refused in a function's environment: ${subject} would change how Node or its loader starts the function's process (micro-fn's own MICRO_FN_* variables are refused too); remove ${object}, and set what the function needs in its code`;
}
