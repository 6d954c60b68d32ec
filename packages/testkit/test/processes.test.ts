import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { childrenDieWithParent, processRunning, spawnOwned, stopProcess } from '../src/processes.js';
import { freePort, isAddressInUse, retryOnPortTaken, startLocalRedis, type RedisHandle } from '../src/redis.js';
import { eventually } from '../src/wait.js';

/**
 * Pids of every running redis-server on this machine listening on `port`: by its arguments
 * (`--port <port>`) or, once it has set it, its process title (`redis-server 127.0.0.1:<port>`).
 */
function redisServersOn(port: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let comm: string;
    let cmdline: string;
    try {
      comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // gone meanwhile
    }
    if (comm !== 'redis-server' || !processRunning(Number(entry))) continue;
    if (new RegExp(`(--port ${port}|:${port})( |$)`).test(cmdline.trim())) pids.push(Number(entry));
  }
  return pids;
}
const portOf = (h: RedisHandle) => Number(new URL(h.url).port);

describe('processes the test kit starts do not outlive their use', () => {
  const handles: RedisHandle[] = [];
  afterEach(async () => {
    await Promise.allSettled(handles.splice(0).map((h) => h.stop()));
  });
  const local = async () => {
    const h = await startLocalRedis();
    handles.push(h);
    return h;
  };

  it('a stopped Redis is gone', async () => {
    const h = await local();
    const pid = h.pid!;
    expect(processRunning(pid)).toBe(true);
    expect(redisServersOn(portOf(h))).toEqual([pid]);
    await h.stop();
    expect(processRunning(pid)).toBe(false);
    expect(h.pid).toBeUndefined();
    await expect(h.start!()).rejects.toThrow(/was stopped/);
  });

  it('start() on a running Redis changes nothing, and stop() still stops it', async () => {
    // what the gateway's Redis-outage test does in its afterAll: it used to spawn a second server
    // that failed to bind, so stop() stopped that one and the first outlived the run
    const h = await local();
    const pid = h.pid!;
    await h.start!();
    expect(h.pid).toBe(pid);
    expect(redisServersOn(portOf(h))).toEqual([pid]);
    await h.stop();
    expect(redisServersOn(portOf(h))).toEqual([]);
  });

  it('a stop that races a restart, or a kill and a start, leaves no server', async () => {
    const h = await local();
    const first = h.pid!;
    await Promise.allSettled([h.restart!(), h.stop()]);
    expect(processRunning(first)).toBe(false);
    expect(redisServersOn(portOf(h))).toEqual([]);

    const g = await local();
    await Promise.allSettled([g.kill!(), g.start!(), g.stop()]);
    expect(redisServersOn(portOf(g))).toEqual([]);
  });

  it('another server answering on the port does not pass for the one started', async () => {
    const blocker = await local();
    // the new server cannot bind the port; the blocker answers PING there meanwhile
    await expect(startLocalRedis({ port: portOf(blocker) })).rejects.toThrow(/redis-server exited \(1\)/);
    expect(redisServersOn(portOf(blocker))).toEqual([blocker.pid]);
  });

  it('children die with the test process that started them, even when it is killed', async () => {
    expect(childrenDieWithParent(), 'setpriv --pdeathsig (util-linux) is needed on Linux').toBe(true);
    // a parent that runs the built test kit (it cannot load TypeScript) and is then killed
    const dist = fileURLToPath(new URL('../dist/processes.js', import.meta.url));
    if (!existsSync(dist)) throw new Error('packages/testkit/dist is missing: run "npm run build" first');
    for (const ending of ['SIGKILL', 'exit'] as const) {
      const port = await freePort();
      const script = [
        `import { spawnOwned } from ${JSON.stringify(dist)};`,
        `const redis = spawnOwned('redis-server', ['--port', '${port}', '--bind', '127.0.0.1', '--save', ''], { stdio: 'ignore' });`,
        `console.log(redis.pid);`,
        ending === 'exit' ? `setTimeout(() => process.exit(0), 300);` : `setInterval(() => {}, 1000);`,
      ].join('\n');
      const parent = spawnOwned(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      const pid = await new Promise<number>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
      await eventually(() => redisServersOn(port).includes(pid), { what: 'the child redis-server' });
      if (ending === 'SIGKILL') await stopProcess(parent, 'SIGKILL');
      else await new Promise((resolve) => parent.once('exit', resolve));
      await eventually(() => !processRunning(pid), { timeoutMs: 5000, what: `redis-server ${pid} to die with its parent (${ending})` });
    }
  });

  it('spawnOwned runs the command itself: the pid is the command\'s', async () => {
    const child = spawnOwned('sleep', ['30'], { stdio: 'ignore' });
    await eventually(() => readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').startsWith('sleep\0'), { what: 'setpriv to exec sleep' });
    await stopProcess(child, 'SIGTERM');
    expect(processRunning(child.pid!)).toBe(false);
  });
});

describe('free ports', () => {
  it('are drawn from below the ephemeral range, where no outgoing connection can take them', async () => {
    const ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(ephemeralLow);
    }
    // random, not one port handed to every caller
    expect(new Set(ports).size).toBeGreaterThan(1);
  });

  it('a start whose port was taken is retried; any other failure, or too many, is thrown', async () => {
    const taken = () => new Error('listen EADDRINUSE: address already in use 127.0.0.1:34005');
    let calls = 0;
    await expect(retryOnPortTaken(async () => (++calls < 3 ? Promise.reject(taken()) : 'started'))).resolves.toBe('started');
    expect(calls).toBe(3);

    calls = 0;
    await expect(retryOnPortTaken(async () => (++calls, Promise.reject(new Error('ADMIN_API_KEYS: too short'))))).rejects.toThrow(/ADMIN_API_KEYS/);
    expect(calls).toBe(1);

    calls = 0;
    await expect(retryOnPortTaken(async () => (++calls, Promise.reject(taken())), 4)).rejects.toThrow(/EADDRINUSE/);
    expect(calls).toBe(4);

    expect(isAddressInUse('[ALERT] Starting frontend fe: cannot bind socket')).toBe(true);
    expect(isAddressInUse('# Warning: Could not create server TCP listening socket 127.0.0.1:6379: bind: Address already in use')).toBe(true);
    expect(isAddressInUse('# Failed listening on port 20123 (cluster), aborting.')).toBe(true);
    expect(isAddressInUse('exited (1): invalid config')).toBe(false);
  });
});
