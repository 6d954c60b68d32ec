import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';
import { freePort, randomKeyPrefix } from '@switchboard/testkit';
import { startAdminProcess, startDemoServer, startDispatcherProcess, startProcess } from '../src/index.js';

describe('service processes', () => {
  it('starts the dispatcher from dist/main.js, ready when it says so, and stops it cleanly', async () => {
    const dispatcher = await startDispatcherProcess({ redis: inject('redis'), keyPrefix: randomKeyPrefix() });
    try {
      expect((await fetch(`${dispatcher.url}/readyz`)).status).toBe(200);
    } finally {
      await dispatcher.stop();
    }
    expect(await dispatcher.exited).toBe(0);
  });

  it('rejects with the output of a process that exits before it is ready', async () => {
    const failed = startAdminProcess({ redis: inject('redis'), keyPrefix: randomKeyPrefix(), apiKeys: ['too-short'] });
    await expect(failed).rejects.toThrow(/admin exited \(1\) before it was ready[\s\S]*ADMIN_API_KEYS/);
  });

  it('rejects after its deadline, and stops the process, when it never gets ready', async () => {
    const port = await freePort();
    const started = startProcess({
      name: 'never-ready',
      script: fileURLToPath(new URL('../../../scripts/demo-server.mjs', import.meta.url)),
      port,
      readyPath: '/not-a-page',
      // long enough for it to start and listen on a busy machine: it answers, but never 200
      timeoutMs: 5000,
      env: { DEMO_HOST: '127.0.0.1', DEMO_PORT: String(port) },
    });
    await expect(started).rejects.toThrow(/timed out after 5000 ms waiting for never-ready to be ready[\s\S]*demo-server: http:/);
    // nothing is left listening
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it('is not fooled by another server that took the port: the demo server must say it listens', async () => {
    const squatter = createServer((_req, res) => res.writeHead(200).end('{}'));
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const { port } = squatter.address() as AddressInfo;
    try {
      await expect(startDemoServer({ lbUrl: 'http://127.0.0.1:1', port })).rejects.toThrow(/demo-server exited \(1\)[\s\S]*cannot listen/);
    } finally {
      squatter.close();
    }
  });
});
