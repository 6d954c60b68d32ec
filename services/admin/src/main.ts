import closeWithGrace from 'close-with-grace';
import { createVerifier, type TokenVerifier } from '@switchboard/auth';
import { ConfigError, describeRedis, jwtWarnings, loadAdminConfig, type AdminConfig } from '@switchboard/config';
import { createLogger, createRegistry } from '@switchboard/observability';
import { createProducer } from '@switchboard/producer';
import { ioKey } from '@switchboard/protocol';
import { Broadcaster, closeRedis, createRedisClient, throttled, verifyRedisServer } from '@switchboard/store';
import { buildAdmin } from './app.js';

let config: AdminConfig;
let verifier: TokenVerifier | undefined;
try {
  config = loadAdminConfig();
  verifier = config.jwt ? createVerifier(config.jwt) : undefined;
} catch (err) {
  // A ConfigError names the variable; createVerifier explains a bad key or algorithm list.
  console.error(err instanceof ConfigError ? err.message : `Invalid configuration: ${(err as Error).message}`);
  process.exit(1);
}

const logger = createLogger({ service: 'admin', level: config.logLevel, pod: config.podId });
for (const w of jwtWarnings(config.jwt)) logger.warn({ variables: w.variables }, w.message);
const metrics = createRegistry('admin', config.podId);
// Commands fail fast while Redis is away: a request answers 503 instead of hanging.
const redis = createRedisClient(config.redis, 'admin', logger, { maxRetriesPerRequest: 1, commandTimeout: 5000 });
// A Redis unreachable at start only gets a warning: the admin answers 503 until it is back.
if (!(await verifyRedisServer(redis, logger))) process.exit(1);
const emitter = new Broadcaster(redis, ioKey(config.keyPrefix), config.redis.pubsubMode);
const producer = createProducer({
  connection: config.redis,
  keyPrefix: config.keyPrefix,
  onError: throttled((err: Error) => logger.warn({ err: { message: err.message } }, 'notification queue error'), 5000),
});

const app = await buildAdmin({ redis, emitter, producer, ...(verifier ? { verifier } : {}), logger, metrics }, config);

closeWithGrace({ delay: config.shutdownTimeoutMs, logger }, async ({ signal, err }) => {
  if (err) logger.error({ err }, 'closing after an error');
  else logger.info({ signal }, 'shutting down');
  await app.close();
  await producer.close();
  await closeRedis(redis);
});

logger.info(
  { redis: describeRedis(config.redis), apiKeys: config.adminApiKeys.length, jwt: verifier !== undefined },
  'starting',
);
try {
  await app.listen({ port: config.port, host: config.host });
} catch (err) {
  logger.fatal({ err }, 'cannot listen');
  process.exit(1);
}
