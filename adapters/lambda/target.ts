/** The Lambda target, declared once: its build, its deploy and their options. Build-time only. */
import { join } from 'node:path';
import { microFnHome } from '../../runtime/plugins/local/home.js';
import { entryName } from '../kit/entry.js';
import { duration, whole } from '../kit/options.js';
import { defineTarget } from '../kit/target.js';

export const target = defineTarget({
  name: 'lambda',
  summary:
    'AWS Lambda (Node.js 22): a zip whose handler takes direct invokes, Function URL / HTTP API requests and SQS batches',
  platform: 'node',
  description: [
    'Bundles it for AWS Lambda (nodejs22.x), creates the function or updates its code and configuration, publishes',
    'a version, points --alias at it, and registers it at lambda://REGION/NAME:ALIAS, where `micro-fn call` reaches',
    'it. Credentials and region come from the AWS chain (AWS_PROFILE, AWS_REGION, ...); --endpoint (or',
    "AWS_ENDPOINT_URL_LAMBDA) deploys to another Lambda API, e.g. micro-fn serve's own (http://127.0.0.1:52980).",
    'Its --env is all the environment it gets: give it MICRO_REGISTRY, MICRO_BROKER and their addresses for calls',
    'and publishes from Lambda. A running micro-fn serve triggers it from its topics.',
  ],
  options: {
    role: { type: 'string', value: 'ARN', description: 'the execution role, needed to create the function' },
    region: { type: 'string', value: 'REGION', description: "the AWS region (default: AWS_REGION or the profile's)" },
    alias: { type: 'string', value: 'NAME', description: 'the alias to point at the new version (default live)' },
    endpoint: { type: 'string', value: 'URL', description: 'another Lambda API (env AWS_ENDPOINT_URL_LAMBDA)' },
    memory: { type: 'string', value: 'MB', description: 'memory, 128 to 10240 (default: 128, or unchanged)' },
    timeout: {
      type: 'string',
      value: 'DURATION',
      description: 'per invocation, up to 900s (default: 3s, or unchanged)',
    },
    'dry-run': { type: 'boolean', description: 'build and print the plan without calling AWS or the registry' },
  },
  examples: [
    'micro-fn deploy examples/helloworld --target lambda --role arn:aws:iam::123456789012:role/micro-fn-lambda',
    'micro-fn deploy examples/helloworld --target lambda --endpoint http://127.0.0.1:52980',
  ],
  async build({ entry, outdir, minify, env }) {
    const { buildLambda } = await import('./build.js');
    return buildLambda(entry, { outdir, minify, env });
  },
  async deploy({ entry, env, hostEnv, options, progress }) {
    const { deployLambda } = await import('./deploy.js');
    const timeout = duration(options.timeout, 'timeout');
    const started = Date.now();
    const result = await deployLambda({
      entry,
      // Kept (and replaced by the next deploy), so the zip of a dry run can be looked at or deployed by other means.
      outdir: join(microFnHome(hostEnv), 'builds', 'lambda', entryName(entry)),
      env,
      role: options.role,
      region: options.region,
      alias: options.alias,
      endpoint: options.endpoint,
      memory: whole(options.memory, 'memory', 128),
      timeout: timeout === undefined ? undefined : Math.ceil(timeout / 1000),
      dryRun: options['dry-run'] === true,
      hostEnv,
      onProgress: progress,
    });
    const what = [...result.endpoints, ...result.topics.map((t) => `topic ${t}`)].join(', ');
    return {
      name: result.name,
      address: result.address,
      summary: `deployed ${result.name} (${what}) at ${result.address}, version ${result.version}, in ${Date.now() - started} ms`,
      details: { ...result },
      plan: options['dry-run'] ? ['dry run, nothing deployed; would:', ...result.plan.map((l) => `  ${l}`)] : undefined,
    };
  },
  removeOptions: {
    region: { type: 'string', value: 'REGION', description: "the AWS region (default: its registry entry's)" },
    endpoint: {
      type: 'string',
      value: 'URL',
      description: "another Lambda API (default: its registry entry's, else AWS_ENDPOINT_URL_LAMBDA)",
    },
  },
  async remove({ name, hostEnv, options, session, progress }) {
    const { removeLambda } = await import('./remove.js');
    const { registry } = await session();
    const result = await removeLambda({
      name,
      region: options.region,
      endpoint: options.endpoint,
      registry,
      hostEnv,
      onProgress: progress,
    });
    const deleted = result.deleted.filter((d) => d.found);
    const where = deleted.map((d) => `${d.region}${d.endpoint ? ` at ${d.endpoint}` : ''}`).join(', ');
    return {
      summary: `removed ${name}: ${deleted.length > 0 ? `deleted Lambda function ${result.functionName} in ${where}` : `Lambda function ${result.functionName} was already gone`}${result.deregistered.length > 0 ? ', deregistered' : ''}`,
      details: { ...result },
    };
  },
});
