// Direct connections to Redis servers (one per node, never through a cluster client) to read what
// each server says about itself: INFO cpu, memory and stats, and which node serves a key's slot.
import { Redis } from 'ioredis';

/** INFO <section> as an object of strings. */
export async function info(client, section) {
  const text = await client.info(section);
  const out = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** A plain client on one server `host:port` (loopback only), with an error listener. */
export function nodeClient(address, name) {
  const [host, port] = address.split(':');
  if (host !== '127.0.0.1') throw new Error(`refusing a non-loopback Redis node (${address})`);
  const client = new Redis({ host, port: Number(port), connectionName: name, lazyConnect: false, maxRetriesPerRequest: 2 });
  client.on('error', () => {});
  return client;
}

/**
 * What a server has spent and moved so far: CPU (ms, used_cpu_sys + used_cpu_user), network bytes in
 * and out, commands processed, memory (used_memory, bytes).
 */
export async function counters(client) {
  const [cpu, stats, memory] = await Promise.all([info(client, 'cpu'), info(client, 'stats'), info(client, 'memory')]);
  return {
    cpuMs: (Number(cpu.used_cpu_sys) + Number(cpu.used_cpu_user)) * 1000,
    netInBytes: Number(stats.total_net_input_bytes),
    netOutBytes: Number(stats.total_net_output_bytes),
    commands: Number(stats.total_commands_processed),
    usedMemory: Number(memory.used_memory),
  };
}

/** b − a for every counter. */
export function diff(a, b) {
  return Object.fromEntries(Object.keys(a).map((k) => [k, b[k] - a[k]]));
}

/** Sums per-node counter deltas. */
export function sum(list) {
  const out = {};
  for (const d of list) for (const [k, v] of Object.entries(d)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/**
 * The primaries of a running cluster, from CLUSTER SHARDS on any node: `[{ address, slots: [[lo, hi]…] }]`.
 */
export async function clusterPrimaries(seedAddress) {
  const seed = nodeClient(seedAddress, 'bench:cluster-shards');
  try {
    const slots = await seed.call('CLUSTER', 'SLOTS');
    const byAddress = new Map();
    for (const [lo, hi, [host, port]] of slots) {
      const address = `${host}:${port}`;
      if (!byAddress.has(address)) byAddress.set(address, { address, slots: [] });
      byAddress.get(address).slots.push([Number(lo), Number(hi)]);
    }
    return [...byAddress.values()];
  } finally {
    seed.disconnect();
  }
}

/** The primary (of `clusterPrimaries`) serving `key`. */
export async function primaryForKey(primaries, key) {
  const client = nodeClient(primaries[0].address, 'bench:keyslot');
  try {
    const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
    return primaries.find((p) => p.slots.some(([lo, hi]) => slot >= lo && slot <= hi));
  } finally {
    client.disconnect();
  }
}

/** Cluster-bus counters of one node (CLUSTER INFO): messages sent, and PUBLISH / SPUBLISH forwarded. */
export async function busCounters(client) {
  const text = await client.call('CLUSTER', 'INFO');
  const get = (key) => Number(new RegExp(`^${key}:(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return {
    busMessagesSent: get('cluster_stats_messages_sent'),
    busPublishSent: get('cluster_stats_messages_publish_sent'),
    busPublishShardSent: get('cluster_stats_messages_publishshard_sent'),
  };
}
