import closeWithGrace from 'close-with-grace';
import { ConfigError, describeRedis, loadDispatcherConfig, webhookWarnings, type DispatcherConfig } from '@switchboard/config';
import { createLogger, createRegistry } from '@switchboard/observability';
import { closeRedis, createRedisClient, verifyRedisServer } from '@switchboard/store';
import { createDispatcher } from './dispatcher.js';

let config: DispatcherConfig;
try {
  config = loadDispatcherConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  createLogger({ service: 'dispatcher' }).fatal({ variable: err.variable }, err.message);
  process.exit(1);
}

const logger = createLogger({ service: 'dispatcher', level: config.logLevel, pod: config.podId });
for (const w of webhookWarnings(config.events?.webhooks?.endpoints)) logger.warn({ variables: w.variables }, w.message);
const registry = createRegistry('dispatcher', config.podId);
// Both wait out a Redis outage instead of failing commands; the watchdog bounds how long.
const connection = createRedisClient(config.redis, 'dispatcher-worker', logger, { maxRetriesPerRequest: null });
const redis = createRedisClient(config.redis, 'dispatcher', logger, { maxRetriesPerRequest: null });
// Bounded: a Redis still away after the check's timeout is the watchdog's to handle.
if (!(await verifyRedisServer(redis, logger))) process.exit(1);

const dispatcher = createDispatcher({ connection, redis, logger, registry }, config, {
  onFatal: () => process.exit(1),
});

closeWithGrace({ delay: config.shutdownTimeoutMs, logger }, async ({ signal, err }) => {
  if (err) logger.error({ err }, 'shutting down after an error');
  else logger.info({ signal }, 'shutting down');
  await dispatcher.close();
  await Promise.all([closeRedis(connection), closeRedis(redis)]);
});

logger.info({ redis: describeRedis(config.redis) }, 'starting');
try {
  await dispatcher.start();
} catch (err) {
  logger.fatal({ err }, 'cannot start');
  process.exit(1);
}
