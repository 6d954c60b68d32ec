import closeWithGrace from 'close-with-grace';
import { createVerifier } from '@switchboard/auth';
import { ConfigError, describeRedis, jwtWarnings, loadGatewayConfig } from '@switchboard/config';
import { createLogger, createRegistry } from '@switchboard/observability';
import { closeRedis, createRedisClient, InboxStore, keys, verifyRedisServer, waitReady } from '@switchboard/store';
import { createGateway } from './gateway.js';

let config;
let verifier;
try {
  config = loadGatewayConfig();
  verifier = createVerifier(config.jwt);
} catch (err) {
  // a bad variable, or key material the verifier refuses (short secret, unusable PEM, bad algorithms)
  console.error(err instanceof ConfigError ? err.message : `Invalid configuration: ${(err as Error).message}`);
  process.exit(1);
}

const logger = createLogger({ service: 'gateway', level: config.logLevel, pod: config.podId });
for (const w of jwtWarnings(config.jwt)) logger.warn({ variables: w.variables }, w.message);
const metrics = createRegistry('gateway', config.podId);
// Commands fail fast while Redis is away: an ack says UNAVAILABLE instead of hanging.
const redis = createRedisClient(config.redis, 'gateway', logger, { maxRetriesPerRequest: 1 });
const pubClient = createRedisClient(config.redis, 'gateway-pub', logger, { maxRetriesPerRequest: 1 });
// sharded pub/sub on Cluster subscribes through one connection per shard
const subClient = createRedisClient(config.redis, 'gateway-sub', logger, { shardedSubscriber: config.redis.pubsubMode === 'sharded' });

try {
  await Promise.all([redis, pubClient, subClient].map((c) => waitReady(c, 30_000)));
} catch (err) {
  logger.fatal({ err, redis: describeRedis(config.redis) }, 'redis unreachable at start');
  process.exit(1);
}
if (!(await verifyRedisServer(redis, logger))) process.exit(1);

const gateway = createGateway(
  {
    redis,
    pubClient,
    subClient,
    verifier,
    inbox: new InboxStore(redis, keys(config.keyPrefix)),
    logger,
    metrics,
  },
  config,
);

closeWithGrace({ delay: config.shutdownTimeoutMs, logger }, async ({ signal, err }) => {
  if (err) logger.error({ err }, 'closing after an error');
  else logger.info({ signal }, 'shutting down');
  await gateway.close();
  await Promise.all([redis, pubClient, subClient].map(closeRedis));
});

try {
  await gateway.listen();
} catch (err) {
  // a port taken or not permitted: leave the registry as a clean shutdown does, then stop
  logger.fatal({ err }, 'cannot listen');
  await gateway.close({ drainMs: 0 }).catch((closeErr: unknown) => logger.warn({ err: closeErr }, 'closing after a failed start'));
  await Promise.all([redis, pubClient, subClient].map(closeRedis));
  process.exit(1);
}
