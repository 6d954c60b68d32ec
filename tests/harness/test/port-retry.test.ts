import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { freePort, randomKeyPrefix } from '@switchboard/testkit';
import { startAdminProcess, startCluster } from '../src/index.js';

// The port picker can be made to hand out a port that is taken, as another test's server would take
// one between the pick and the bind; everything else is the real thing.
vi.mock(import('@switchboard/testkit'), async (importOriginal) => {
  const actual = await importOriginal();
  return { ...actual, freePort: vi.fn(actual.freePort) };
});

describe('a process started on a port another server took meanwhile', () => {
  let squatter: Server;
  let taken: number;

  beforeAll(async () => {
    // it hangs up at once on a readiness probe of the process that lost the port
    squatter = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    taken = (squatter.address() as { port: number }).port;
  });
  afterAll(async () => {
    vi.mocked(freePort).mockReset();
    await new Promise((resolve) => squatter.close(resolve));
  });

  it('the admin exits with EADDRINUSE and is started again on another port', async () => {
    vi.mocked(freePort).mockClear();
    vi.mocked(freePort).mockResolvedValueOnce(taken);
    const admin = await startAdminProcess({ redis: inject('redis'), keyPrefix: randomKeyPrefix(), apiKeys: ['a'.repeat(32)] });
    try {
      expect(vi.mocked(freePort)).toHaveBeenCalledTimes(2);
      expect(admin.port).not.toBe(taken);
      expect((await fetch(`${admin.url}/readyz`)).status).toBe(200);
    } finally {
      await admin.stop();
    }
  });

  it('a gateway process too', async () => {
    vi.mocked(freePort).mockClear();
    vi.mocked(freePort).mockResolvedValueOnce(taken);
    const cluster = await startCluster({ redis: inject('redis'), gateways: 1, processes: true });
    try {
      // public and ops port of the attempt that failed, then of the one that came up
      expect(vi.mocked(freePort)).toHaveBeenCalledTimes(4);
      expect(cluster.gateways[0]!.port).not.toBe(taken);
      expect((await fetch(`${cluster.gateways[0]!.url}/readyz`)).status).toBe(200);
    } finally {
      await cluster.stop();
    }
  });
});
