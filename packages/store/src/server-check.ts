import type { Redis } from 'ioredis';
import { isCluster, waitReady, type RedisClient } from './redis.js';

/** The oldest Redis served: room history detects gaps with `XINFO STREAM`'s `max-deleted-entry-id`, new in 7.0. */
export const MIN_REDIS_VERSION = '7.0.0';

/** Why a start-up check warns. */
export type RedisServerWarningCode = 'NO_MAXMEMORY' | 'EVICTION_POLICY' | 'UNCHECKED';

export interface RedisServerWarning {
  code: RedisServerWarningCode;
  message: string;
}

export interface RedisServerCheck {
  /** `redis_version` of `INFO server`, when it could be read. */
  version?: string;
  warnings: RedisServerWarning[];
}

/** The Redis server cannot be used: older than {@link MIN_REDIS_VERSION}. */
export class RedisServerError extends Error {
  override readonly name = 'RedisServerError';
  readonly code = 'REDIS_TOO_OLD';
  constructor(readonly version: string) {
    super(
      `Redis ${version} is too old: Switchboard needs Redis ${MIN_REDIS_VERSION.replace(/\.0$/, '')} or later ` +
        '(room history detects gaps with the max-deleted-entry-id of XINFO STREAM, new in 7.0)',
    );
  }
}

/** `7.2.4` → `[7, 2, 4]` (missing parts are 0); `undefined` when it does not start with a version. */
export function parseRedisVersion(text: string): [number, number, number] | undefined {
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(text.trim());
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

/** Whether version `a` is older than `b`. */
function older(a: [number, number, number], b: [number, number, number]): boolean {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}

/** The `field:value` lines of an `INFO` reply. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/** What a start-up check found out; `undefined` where it could not. */
export interface RedisServerFacts {
  version?: string;
  maxmemory?: number;
  maxmemoryPolicy?: string;
  /** Why something could not be read, for the `UNCHECKED` warning. */
  problems: string[];
}

/**
 * What the facts mean: warnings for a memory setup that can lose keys, or one that could not be
 * read. Pure, so it can be tested without a server.
 * @throws RedisServerError for a Redis older than {@link MIN_REDIS_VERSION}.
 */
export function assessRedisServer(facts: RedisServerFacts): RedisServerWarning[] {
  if (facts.version !== undefined) {
    const version = parseRedisVersion(facts.version);
    if (version && older(version, parseRedisVersion(MIN_REDIS_VERSION)!)) throw new RedisServerError(facts.version);
  }
  const warnings: RedisServerWarning[] = [];
  if (facts.version === undefined || facts.maxmemory === undefined || facts.maxmemoryPolicy === undefined) {
    const what = [
      facts.version === undefined && 'the version',
      (facts.maxmemory === undefined || facts.maxmemoryPolicy === undefined) && 'maxmemory and maxmemory-policy',
    ].filter(Boolean);
    warnings.push({
      code: 'UNCHECKED',
      message:
        `Could not check ${what.join(' or ')} of the Redis server (${facts.problems.join('; ') || 'no answer'}): ` +
        `make sure it is Redis ${MIN_REDIS_VERSION.replace(/\.0$/, '')} or later, with maxmemory set and maxmemory-policy noeviction`,
    });
  }
  if (facts.maxmemory === 0) {
    warnings.push({
      code: 'NO_MAXMEMORY',
      message:
        'Redis maxmemory is 0 (no limit): Redis grows until the host runs out of memory and it is killed, losing ' +
        'registry, inbox and queue keys; set maxmemory, with maxmemory-policy noeviction',
    });
  }
  if (facts.maxmemoryPolicy !== undefined && facts.maxmemoryPolicy !== 'noeviction') {
    warnings.push({
      code: 'EVICTION_POLICY',
      message:
        `Redis maxmemory-policy is ${facts.maxmemoryPolicy}, not noeviction: at maxmemory Redis silently evicts keys, ` +
        'dropping registry, inbox and queue keys (presence and counts go wrong, notifications and jobs are lost); ' +
        'set maxmemory-policy noeviction so that writes fail loudly instead',
    });
  }
  return warnings;
}

export interface CheckRedisServerOptions {
  /** How long to wait for the client to be ready and for each answer. @default 10000 */
  timeoutMs?: number;
}

/**
 * The start-up check every service runs on its Redis: the version from `INFO server`, and
 * `maxmemory` / `maxmemory-policy` from `CONFIG GET`, or from `INFO memory` where CONFIG is
 * disabled (managed Redis). What cannot be read becomes an `UNCHECKED` warning, never an error.
 * @throws RedisServerError for a Redis older than {@link MIN_REDIS_VERSION}.
 */
export async function checkRedisServer(client: RedisClient, options: CheckRedisServerOptions = {}): Promise<RedisServerCheck> {
  if (!isCluster(client)) return checkNode(client, options, true);
  // Redis Cluster: every primary is checked; the oldest version counts, each warning once
  if ((await waitReady(client, options.timeoutMs ?? 10_000).then(() => true, () => false)) === false) {
    return { warnings: assessRedisServer({ problems: ['connecting: the cluster is not ready'] }) };
  }
  // the cluster's node connections open on first use: no waiting for them to be ready
  const checks = await Promise.all(client.nodes('master').map((node) => checkNode(node, options, false)));
  const versions = checks.flatMap((c) => (c.version ? [c.version] : []));
  const oldest = versions.sort((a, b) => (older(parseRedisVersion(a) ?? [0, 0, 0], parseRedisVersion(b) ?? [0, 0, 0]) ? -1 : 1))[0];
  const warnings = new Map<string, RedisServerWarning>();
  for (const c of checks) for (const w of c.warnings) if (!warnings.has(w.code)) warnings.set(w.code, w);
  return { ...(oldest ? { version: oldest } : {}), warnings: [...warnings.values()] };
}

async function checkNode(client: Redis, options: CheckRedisServerOptions, waitForReady: boolean): Promise<RedisServerCheck> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const facts: RedisServerFacts = { problems: [] };
  const ask = async <T>(what: string, command: () => Promise<T>): Promise<T | undefined> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        command(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      facts.problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  };

  if (waitForReady && (await ask('connecting', () => waitReady(client, timeoutMs).then(() => true))) === undefined) {
    return { warnings: assessRedisServer(facts) };
  }
  const server = await ask('INFO server', () => client.info('server'));
  if (server !== undefined) {
    const version = parseInfo(server).get('redis_version');
    if (version !== undefined) facts.version = version;
    else facts.problems.push('INFO server has no redis_version');
  }
  const config = await ask('CONFIG GET', () => client.config('GET', 'maxmemory*') as Promise<string[]>);
  const fields = new Map<string, string>();
  for (let i = 0; config && i + 1 < config.length; i += 2) fields.set(config[i]!, config[i + 1]!);
  let maxmemory = fields.get('maxmemory');
  let policy = fields.get('maxmemory-policy');
  if (maxmemory === undefined || policy === undefined) {
    const memory = await ask('INFO memory', () => client.info('memory'));
    const info = parseInfo(memory ?? '');
    maxmemory ??= info.get('maxmemory');
    policy ??= info.get('maxmemory_policy');
    if (memory !== undefined && (maxmemory === undefined || policy === undefined)) {
      facts.problems.push('INFO memory has no maxmemory / maxmemory_policy');
    }
  }
  if (maxmemory !== undefined && /^\d+$/.test(maxmemory)) facts.maxmemory = Number(maxmemory);
  if (policy !== undefined) facts.maxmemoryPolicy = policy;
  return { ...(facts.version !== undefined ? { version: facts.version } : {}), warnings: assessRedisServer(facts) };
}

export interface ServerCheckLogger {
  warn(obj: object, msg: string): void;
  fatal(obj: object, msg: string): void;
}

/**
 * {@link checkRedisServer} as a service's `main.ts` runs it: logs each warning, and logs a
 * too-old server as fatal. Resolves `false` when the service must not start (exit 1).
 */
export async function verifyRedisServer(client: RedisClient, logger: ServerCheckLogger, options?: CheckRedisServerOptions): Promise<boolean> {
  try {
    const { version, warnings } = await checkRedisServer(client, options);
    for (const w of warnings) logger.warn({ check: w.code, ...(version ? { redisVersion: version } : {}) }, w.message);
    return true;
  } catch (err) {
    if (!(err instanceof RedisServerError)) throw err;
    logger.fatal({ check: err.code, redisVersion: err.version }, err.message);
    return false;
  }
}
