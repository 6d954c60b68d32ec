// Room fan-out on Redis Cluster, classic vs sharded pub/sub (PUBSUB_MODE), 2 gateway pods: the fanout
// scenario's phases and figures with the Switchboard gateway on both sides. With one room held by both
// pods, sharded pub/sub saves nothing; the question is whether it costs delivery rate.
import { compare, configure } from './fanout.mjs';

export const name = 'fanout-sharded';
export const description =
  'Room fan-out to 1,000 clients over 2 pods on Redis Cluster, classic vs sharded pub/sub: saturation deliveries/s ' +
  '(target: sharded ≥ 0.9× classic) and latency, side by side in one run (the fanout phases, shorter).';

/** Options: those of fanout (--quick, --receivers, --steps, …), --full for fanout's phase lengths, --sides=classic,sharded */
export async function run(ctx) {
  const cfg = configure(ctx.options, { short: true });
  if (!ctx.options.sides) cfg.sides = ['classic', 'sharded'];
  cfg.targets = { saturation: 0.9, p99: undefined };
  const on = (mode) => async () => ({ redisEnv: { ...(await ctx.redisCluster()).env, PUBSUB_MODE: mode } });
  return compare(
    ctx,
    cfg,
    {
      reference: 'classic',
      subject: 'sharded',
      redisText: 'one Redis Cluster (3 primaries, 3 replicas, local processes)',
      specs: {
        classic: { label: 'classic', kind: 'switchboard', script: cfg.gateway, redis: on('classic'), prefix: 'fcls' },
        sharded: { label: 'sharded', kind: 'switchboard', script: cfg.gateway, redis: on('sharded'), prefix: 'fshd' },
      },
    },
    { name, title: 'Room fan-out on Redis Cluster: classic vs sharded pub/sub, 2 pods' },
  );
}
