import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { io as ioClient } from 'socket.io-client';
import { eventually, startHaproxy, type HaproxyHandle } from '@switchboard/testkit';
import { startCluster, type ClientSocket, type Cluster } from '@switchboard/harness';
import type { SessionReady } from '@switchboard/protocol';
import { ReadModel } from '@switchboard/store';

describe('SIGTERM on a gateway process behind the load balancer', () => {
  let cluster: Cluster;
  let lb: HaproxyHandle;
  const clients: ClientSocket[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 3, processes: true, env: { SHUTDOWN_TIMEOUT_MS: '6000' } });
    lb = await startHaproxy({ gateways: cluster.gateways.map((g) => `127.0.0.1:${g.port}`) });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await lb?.stop();
    await cluster?.stop();
  });

  it('refuses new connections, disconnects its clients, who reconnect to another pod, and exits within the bound', async () => {
    const sessions = new Map<ClientSocket, SessionReady[]>();
    for (let i = 0; i < 24; i++) {
      const token = await cluster.token({ sub: `drain-${i}` });
      const transports = i % 2 ? ['websocket'] : ['polling', 'websocket'];
      const c: ClientSocket = ioClient(lb.url, { auth: { token }, transports, withCredentials: true, forceNew: true, reconnectionDelay: 100, reconnectionDelayMax: 500 });
      clients.push(c);
      sessions.set(c, []);
      c.on('session:ready', (s) => sessions.get(c)!.push(s));
    }
    await eventually(() => [...sessions.values()].every((s) => s.length === 1), { timeoutMs: 15_000 }).catch((e) => { throw new Error(`initial: ${[...sessions.values()].map((s) => s.length).join(",")} ${e}`); });

    const victim = cluster.gateways[0]!;
    const onVictim = clients.filter((c) => sessions.get(c)![0]!.pod === victim.podId);
    expect(onVictim.length).toBeGreaterThan(0);

    const started = Date.now();
    await victim.stop(); // SIGTERM, resolves when the process has exited
    const code = await victim.exited;
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(6000 + 1000);

    // the victim no longer accepts connections
    await expect(fetch(`${victim.url}/healthz`)).rejects.toThrow();

    // every one of its clients came back, on another pod; the others never moved
    await eventually(() => onVictim.every((c) => sessions.get(c)!.length >= 2 && c.connected), { timeoutMs: 15_000 });
    for (const c of onVictim) expect(sessions.get(c)!.at(-1)!.pod).not.toBe(victim.podId);
    for (const c of clients.filter((x) => !onVictim.includes(x))) expect(sessions.get(c)!.length).toBe(1);

    // and the registry forgot the victim at once (a clean exit, not a reap)
    const model = new ReadModel(cluster.redis, cluster.keyPrefix);
    expect((await model.counts()).pods.map((p) => p.id)).not.toContain(victim.podId);
    await eventually(async () => (await model.counts()).connections === clients.length);
  });
});
