export { createRouterCache } from './router-cache.js';
export type {
  EvictionReason,
  KvHandle,
  RouterCacheOptions,
  RoutingConflictReport,
} from './router-cache-options.js';
export type {
  InsertOptions,
  InsertResult,
  PrefixMatch,
  RadixNodeDump,
  RouterCache,
  RouterCacheDump,
  RouterCacheStats,
} from './router-cache-types.js';
