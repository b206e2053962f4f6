/**
 * The Lambda plugin's descriptor: a client transport for `lambda://REGION/NAME[:QUALIFIER]` nodes. The transport
 * module, and the AWS SDK with it, load on the first call to such a node: a host that never calls a Lambda
 * function pays nothing for being able to.
 */
import type { Transport } from '../../core/transport.js';
import type { TransportPlugin } from '../../core/plugin.js';

export const lambdaTransport: TransportPlugin = {
  kind: 'transport',
  name: 'lambda',
  summary: 'calls functions on AWS Lambda (or another Lambda API) with Invoke',
  schemes: ['lambda'],
  platforms: ['node'],
  packages: { '@aws-sdk/client-lambda': {} },
  async create({ env }) {
    let loaded: Promise<Transport> | undefined;
    const load = () => (loaded ??= import('./transport.js').then((m) => m.createLambdaTransport({ env })));
    return {
      schemes: ['lambda'],
      call: async (node, request, options) => (await load()).call(node, request, options),
      close: async () => (loaded ? (await loaded).close?.() : undefined),
    };
  },
};
