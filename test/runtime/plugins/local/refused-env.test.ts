// The variables a function may not declare for micro-fn serve: those that change how Node or its loader start it.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { refusedEnv, refusedEnvProblem } from '../../../../runtime/plugins/local/refused-env.js';

// ---
const refused = suite('refusedEnv');

refused('names Node, OpenSSL, glibc, loader, libuv and micro-fn internal variables, in order', () => {
  const names = [
    'NODE_OPTIONS',
    'API_KEY',
    'NODE_PATH',
    'LD_PRELOAD',
    'DYLD_INSERT_LIBRARIES',
    'UV_THREADPOOL_SIZE',
    'OPENSSL_CONF',
    'GLIBC_TUNABLES',
    'NODE_CHANNEL_FD',
    'MICRO_FN_IPC',
    'MICRO_REGISTRY',
    'NODE_ENV',
    'TZ',
  ];
  assert.equal(refusedEnv(names), [
    'NODE_OPTIONS',
    'NODE_PATH',
    'LD_PRELOAD',
    'DYLD_INSERT_LIBRARIES',
    'UV_THREADPOOL_SIZE',
    'OPENSSL_CONF',
    'GLIBC_TUNABLES',
    'NODE_CHANNEL_FD',
    'MICRO_FN_IPC',
  ]);
});

// ---
const problem = suite('refusedEnvProblem');

problem('is undefined for an environment without refused names (MICRO_* settings and NODE_ENV are fine)', () => {
  assert.is(refusedEnvProblem(undefined), undefined);
  assert.is(refusedEnvProblem({ API_KEY: 'x', MICRO_REGISTRY: 'nats', NODE_ENV: 'production' }), undefined);
});

problem('names each refused variable and says what to do', () => {
  const text = refusedEnvProblem({ NODE_OPTIONS: '--import=x', API_KEY: 'x', LD_PRELOAD: '/x.so' })!;
  assert.match(text, /^NODE_OPTIONS, LD_PRELOAD are refused in a function's environment/);
  assert.match(text, /remove them/);
  assert.match(refusedEnvProblem({ NODE_OPTIONS: '' })!, /^NODE_OPTIONS is refused/);
});

refused.run();
problem.run();
