/**
 * Every plugin folder's descriptors (its `plugin.ts`). Adding a plugin is a folder plus one line here. A bundle
 * gets its own copy of this module with only the descriptors its configuration selects (adapters/kit/plugins.ts
 * generates it), so a plugin that is not chosen is not in the bundle at all.
 */
import type { PluginModule } from '../core/plugin.js';
import * as cloudflareKv from './cloudflare-kv/plugin.js';
import * as http from './http/plugin.js';
import * as lambda from './lambda/plugin.js';
import * as local from './local/plugin.js';
import * as memory from './memory/plugin.js';
import * as nats from './nats/plugin.js';
import * as otel from './otel/plugin.js';

/** Plugin folder name to its descriptors. */
export const pluginModules: Readonly<Record<string, PluginModule>> = {
  'cloudflare-kv': cloudflareKv,
  http,
  lambda,
  local,
  memory,
  nats,
  otel,
};

/** In a bundle: the plugins it was built with, for the error that names a plugin it lacks. Here: every one. */
export const bundled: string | undefined = undefined;
