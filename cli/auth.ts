/**
 * `micro-fn auth`: the tokens and rules of `micro-fn serve --auth`, and the AWS profile for serve's Lambda API, all
 * from the credential in MICRO_FN_HOME (made by serve on its first start, or here if serve never ran).
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { UserError } from '../runtime/core/errors.js';
import { ensureCredential } from '../runtime/plugins/local/credential.js';
import { microFnHome } from '../runtime/plugins/local/home.js';
import { RUNTIME_SERVICE, runtimeAddress } from '../runtime/plugins/local/protocol.js';
import { checkRule, readRules, rulesPath, writeRules, type Rule } from '../serve/auth/rules.js';
import { duration, envWithFlags, pluginOptions, defineCommand } from './command.js';
import { write } from './output.js';
import { withSession } from './plugins.js';
import { DEFAULT_GATEWAY } from './serve.js';

const USAGE = 'micro-fn auth token | rule list|set|remove | aws (see micro-fn auth --help)';

export const command = defineCommand({
  name: 'auth',
  summary: 'tokens and rules for serve --auth; the AWS profile for serve’s Lambda API',
  usage: '<token | rule | aws> ...',
  description: [
    'token   prints a JWT signed with the key in MICRO_FN_HOME/auth/credential.json, for calls through a',
    '        `micro-fn serve --auth` gateway: Authorization: Bearer <token> (or MICRO_AUTH_TOKEN=<token> for the CLI).',
    'rule    who may call what under --auth. RESOURCE is SERVICE/Service.Method, SERVICE/Service.*, SERVICE or *;',
    '        the most specific rule decides; with none, any valid token may call. --public: anyone, no token;',
    '        --account: any valid token; --scope a,b: a token holding a or b. Broker.Publish is micro-fn/Broker.Publish.',
    '        serve picks changes up within a second.',
    'aws     prints an AWS CLI profile with serve’s access key pair and endpoint (--write adds it to ~/.aws/config),',
    '        so `aws --profile micro-fn lambda get-function|invoke|…` and the SDKs reach serve’s Lambda API.',
  ].join('\n'),
  options: {
    scope: { type: 'string', value: 'A,B', description: 'token: the scopes it holds; rule set: the scopes it needs' },
    ttl: { type: 'string', value: 'DURATION', description: 'token: how long it is valid (default 1h)' },
    subject: { type: 'string', value: 'NAME', description: 'token: who it speaks for (default: your user name)' },
    public: { type: 'boolean', description: 'rule set: anyone may call, without a token' },
    account: { type: 'boolean', description: 'rule set: any valid token may call' },
    profile: { type: 'string', value: 'NAME', description: 'aws: the profile name (default micro-fn)' },
    endpoint: {
      type: 'string',
      value: 'URL',
      description: `aws: serve's address (default: the running serve's, else http://${DEFAULT_GATEWAY})`,
    },
    write: { type: 'boolean', description: 'aws: write the profile into ~/.aws/config (AWS_CONFIG_FILE), mode 0600' },
    ...pluginOptions,
  },
  examples: [
    'micro-fn auth token --scope admin --ttl 8h',
    'micro-fn auth rule set helloworld/Greeter.Hello --public',
    'micro-fn auth rule set billing --scope finance',
    'micro-fn auth aws --write && aws --profile micro-fn lambda get-function --function-name hello',
  ],
  async run({ positionals, values }) {
    const home = microFnHome(envWithFlags(values));
    const [what, ...rest] = positionals;
    if (what === 'token') {
      if (rest.length) throw new UserError(`unexpected argument "${rest[0]}": ${USAGE}`);
      const ms = duration(values.ttl, 'ttl') ?? 3_600_000;
      if (ms < 1000) throw new UserError('--ttl takes a duration of a second or more, like 1h');
      const { signToken, signingKey } = await import('../serve/auth/jwt.js');
      const token = await signToken(signingKey(ensureCredential(home).jwtKey), {
        subject: values.subject ?? userInfo().username,
        scopes: scopesOf(values.scope) ?? [],
        ttl: Math.floor(ms / 1000),
      });
      await write(
        process.stdout,
        values.json
          ? `${JSON.stringify({ token, expires: new Date(Date.now() + Math.floor(ms / 1000) * 1000).toISOString() })}\n`
          : `${token}\n`,
      );
      return 0;
    }
    if (what === 'rule') return rule(home, rest, values);
    if (what === 'aws') {
      if (rest.length) throw new UserError(`unexpected argument "${rest[0]}": ${USAGE}`);
      const { aws } = ensureCredential(home);
      const name = values.profile ?? 'micro-fn';
      const lines = [
        `[profile ${name}]`,
        `aws_access_key_id = ${aws.accessKeyId}`,
        `aws_secret_access_key = ${aws.secretAccessKey}`,
        'region = us-east-1',
        `endpoint_url = ${values.endpoint ?? (await runningServe(values)) ?? `http://${DEFAULT_GATEWAY}`}`,
      ];
      const file = values.write ? process.env.AWS_CONFIG_FILE || join(homedir(), '.aws', 'config') : undefined;
      if (file) writeProfile(file, name, lines);
      if (values.json) {
        const profile = Object.fromEntries(lines.slice(1).map((line) => line.split(' = ') as [string, string]));
        await write(process.stdout, `${JSON.stringify({ profile: name, ...profile, ...(file ? { file } : {}) })}\n`);
      } else if (file) process.stderr.write(`wrote [profile ${name}] to ${file}: aws --profile ${name} lambda …\n`);
      else await write(process.stdout, `${lines.join('\n')}\n`);
      return 0;
    }
    throw new UserError(`auth needs what to do: ${USAGE}`);
  },
});

async function rule(
  home: string,
  [action, resource, extra]: string[],
  values: { scope?: string; public?: boolean; account?: boolean; json?: boolean },
): Promise<number> {
  const rules = readRules(home);
  if (action === 'list' || action === undefined) {
    if (values.json) await write(process.stdout, `${JSON.stringify(rules)}\n`);
    else {
      const shown = rules.map(
        (r) => `${r.resource}\t${r.access === 'scopes' ? `scope ${r.scopes!.join(',')}` : r.access}`,
      );
      await write(process.stdout, shown.length ? `${shown.join('\n')}\n` : '');
      process.stderr.write(
        `${rules.length} rule${rules.length === 1 ? '' : 's'} in ${rulesPath(home)}; any other call needs a valid token\n`,
      );
    }
    return 0;
  }
  if (!resource || extra !== undefined) throw new UserError(`auth rule ${action} needs one RESOURCE: ${USAGE}`);
  if (action === 'set') {
    const scopes = scopesOf(values.scope);
    const chosen = [values.public && 'public', values.account && 'account', scopes && 'scopes'].filter(Boolean);
    if (chosen.length !== 1) throw new UserError('auth rule set takes one of --public, --account or --scope a,b');
    if (resource.startsWith(`${RUNTIME_SERVICE}/`) && resource !== `${RUNTIME_SERVICE}/Broker.Publish`)
      throw new UserError(
        `only ${RUNTIME_SERVICE}/Broker.Publish of serve's control service takes rules: the rest always needs serve's credential`,
      );
    const next = checkRule({ resource, access: chosen[0] as Rule['access'], ...(scopes ? { scopes } : {}) });
    writeRules(home, [...rules.filter((r) => r.resource !== resource), next]);
    if (values.json) {
      await write(process.stdout, `${JSON.stringify({ set: next })}\n`);
      return 0;
    }
    process.stderr.write(
      `rule set: ${resource} ${next.access === 'scopes' ? `needs scope ${scopes!.join(' or ')}` : `is ${next.access === 'public' ? 'public' : 'open to any valid token'}`}\n`,
    );
    return 0;
  }
  if (action === 'remove') {
    if (!rules.some((r) => r.resource === resource))
      throw new UserError(`no rule for ${resource}: micro-fn auth rule list shows them`);
    writeRules(
      home,
      rules.filter((r) => r.resource !== resource),
    );
    if (values.json) await write(process.stdout, `${JSON.stringify({ removed: resource })}\n`);
    else process.stderr.write(`rule removed: ${resource}\n`);
    return 0;
  }
  throw new UserError(`unknown auth rule action "${action}": ${USAGE}`);
}

/** The address of the serve the registry holds, if exactly one runs. */
function runningServe(values: Readonly<Record<string, unknown>>): Promise<string | undefined> {
  return withSession(values, (session) => runtimeAddress(session.plugins.registry)).catch(() => undefined);
}

function scopesOf(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const scopes = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (scopes.length === 0) throw new UserError('--scope takes names separated by commas, like admin,ops');
  return scopes;
}

/** Puts `lines` (a `[profile name]` section) into the AWS config `file`, replacing that section if it is there. */
function writeProfile(file: string, name: string, lines: string[]): void {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const kept: string[] = [];
  let inside = false;
  for (const line of text.split('\n')) {
    const header = /^\s*\[(.+)\]\s*$/.exec(line);
    if (header) inside = header[1]!.trim() === `profile ${name}`;
    if (!inside) kept.push(line);
  }
  const before = kept.join('\n').replace(/\n*$/, '');
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, `${before ? `${before}\n\n` : ''}${lines.join('\n')}\n`, { mode: 0o600 });
  chmodSync(file, 0o600); // it holds a secret now, whatever its mode was
}
