/**
 * Build-time only: the few Cloudflare API calls a deploy makes (https://developers.cloudflare.com/api/),
 * with fetch. Failures become one-line UserErrors carrying Cloudflare's own messages.
 */
import { UserError } from '../../runtime/core/errors.js';

export const CLOUDFLARE_API = 'https://api.cloudflare.com/client/v4';

export interface CloudflareApiOptions {
  accountId: string;
  token: string;
  /** Default CLOUDFLARE_API; tests point it at a local server. */
  apiBase?: string;
}

/** One ES module of the upload: its part name (a path relative to the main module) and its code. */
export interface UploadModule {
  name: string;
  code: Uint8Array;
  /** Its part's content type: a module (default), or `application/source-map` for a module's map. */
  type?: string;
}

/** The multipart upload's `metadata` part (https://developers.cloudflare.com/workers/configuration/multipart-upload-metadata/). */
export interface UploadMetadata {
  main_module: string;
  compatibility_date: string;
  bindings: UploadBinding[];
}

/** A binding of the upload: a plain-text variable, or a Workers KV namespace by its id. */
export type UploadBinding =
  { type: 'plain_text'; name: string; text: string } | { type: 'kv_namespace'; name: string; namespace_id: string };

/** The content type of a module part: an ES module, not a service-worker script. */
export const MODULE_TYPE = 'application/javascript+module';

const MISSING = Symbol('missing');

/** Calls of one account with one token. */
export class CloudflareApi {
  readonly #options: CloudflareApiOptions;

  constructor(options: CloudflareApiOptions) {
    this.#options = options;
  }

  /** `PUT /accounts/{account_id}/workers/scripts/{script_name}`: the modules and their metadata, as one multipart form. */
  async uploadScript(name: string, metadata: UploadMetadata, modules: UploadModule[]): Promise<void> {
    const form = new FormData();
    form.set('metadata', new Blob([JSON.stringify(metadata)], { type: 'application/json' }), 'metadata.json');
    for (const m of modules)
      form.set(m.name, new Blob([m.code as Uint8Array<ArrayBuffer>], { type: m.type ?? MODULE_TYPE }), m.name);
    await this.#call('PUT', `/workers/scripts/${encodeURIComponent(name)}`, form, `upload the Worker ${name}`);
  }

  /** `POST …/workers/scripts/{script_name}/subdomain`: serve the Worker on the account's workers.dev subdomain. */
  async enableWorkersDev(name: string): Promise<void> {
    await this.#call(
      'POST',
      `/workers/scripts/${encodeURIComponent(name)}/subdomain`,
      JSON.stringify({ enabled: true }),
      `enable ${name} on workers.dev`,
    );
  }

  /** `GET /accounts/{account_id}/workers/subdomain`: the account's `<subdomain>.workers.dev`. */
  async workersSubdomain(): Promise<string> {
    const result = (await this.#call('GET', '/workers/subdomain', undefined, 'read the workers.dev subdomain')) as
      { subdomain?: unknown } | undefined;
    if (typeof result?.subdomain !== 'string' || result.subdomain === '') {
      throw new UserError(
        'the account has no workers.dev subdomain yet: pick one in the Cloudflare dashboard (Workers & Pages), or pass --url',
      );
    }
    return result.subdomain;
  }

  /**
   * `DELETE /accounts/{account_id}/workers/scripts/{script_name}?force=true`: the Worker and its routes go (force: even
   * with bindings to it). Resolves false when the account has no such Worker (404).
   */
  async deleteScript(name: string): Promise<boolean> {
    const result = await this.#call(
      'DELETE',
      `/workers/scripts/${encodeURIComponent(name)}?force=true`,
      undefined,
      `delete the Worker ${name}`,
      true,
    );
    return result !== MISSING;
  }

  /**
   * The id of the account's Workers KV namespace titled `title`, created when there is none
   * (`GET`/`POST /accounts/{account_id}/storage/kv/namespaces`). `created` tells which.
   */
  async kvNamespace(title: string): Promise<{ id: string; created: boolean }> {
    for (let page = 1; ; page++) {
      const result = await this.#call(
        'GET',
        `/storage/kv/namespaces?per_page=100&page=${page}`,
        undefined,
        'list the Workers KV namespaces',
      );
      const namespaces = Array.isArray(result) ? (result as { id?: unknown; title?: unknown }[]) : [];
      const found = namespaces.find((n) => n.title === title && typeof n.id === 'string');
      if (found) return { id: found.id as string, created: false };
      if (namespaces.length < 100) break;
    }
    const created = (await this.#call(
      'POST',
      '/storage/kv/namespaces',
      JSON.stringify({ title }),
      `create the Workers KV namespace ${title}`,
    )) as { id?: unknown } | undefined;
    if (typeof created?.id !== 'string')
      throw new UserError(`Cloudflare created the KV namespace ${title} but gave no id`);
    return { id: created.id, created: true };
  }

  async #call(
    method: string,
    path: string,
    body: FormData | string | undefined,
    doing: string,
    missingIsAnswer = false,
  ): Promise<unknown> {
    const { accountId, token, apiBase = CLOUDFLARE_API } = this.#options;
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (typeof body === 'string') headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${apiBase}/accounts/${encodeURIComponent(accountId)}${path}`, { method, headers, body });
    } catch (err) {
      throw new UserError(`cannot reach the Cloudflare API to ${doing}: ${(err as Error).message}`, { cause: err });
    }
    const text = await res.text();
    if (missingIsAnswer && res.status === 404) return MISSING;
    // A delete answers with no body at all.
    if (res.ok && text === '') return undefined;
    let reply: { success?: boolean; errors?: { code?: number; message?: string }[]; result?: unknown } = {};
    try {
      reply = JSON.parse(text);
    } catch {
      // not JSON (a proxy's error page): reported with the status below
    }
    if (!res.ok || reply.success !== true) {
      const reasons =
        reply.errors?.map((e) => `${e.message ?? 'error'}${e.code ? ` (${e.code})` : ''}`).join('; ') ||
        `${res.status} ${text.slice(0, 200)}`;
      const hint =
        res.status === 401 || res.status === 403
          ? `: check CLOUDFLARE_API_TOKEN (it needs Workers Scripts: Edit${path.startsWith('/storage/kv') ? ' and Workers KV Storage: Edit' : ''}) and CLOUDFLARE_ACCOUNT_ID`
          : '';
      throw new UserError(`Cloudflare refused to ${doing}: ${reasons}${hint}`);
    }
    return reply.result;
  }
}
