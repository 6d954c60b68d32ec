import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startHaproxy, type HaproxyHandle } from '@switchboard/testkit';
import { startCluster, type Cluster } from '@switchboard/harness';

const require = createRequire(import.meta.url);
// the package's exports hide dist/: find it from the package entry
const CLIENT_BUNDLE = readFileSync(join(dirname(require.resolve('socket.io-client')), '..', '..', 'dist', 'socket.io.min.js'), 'utf8');

const PAGE = `<!doctype html><html><head><script src="/socket.io.min.js"></script></head><body><script>
window.session = (url, token, transports) => new Promise((resolve) => {
  const socket = io(url, { auth: { token }, transports, withCredentials: true, reconnection: false });
  window.socket = socket;
  window.received = [];
  socket.on('room:message', (m) => window.received.push(m));
  socket.on('session:ready', (s) => resolve({ ok: true, session: s }));
  socket.on('connect_error', (e) => resolve({ ok: false, message: e.message, data: e.data || null }));
});
</script></body></html>`;

/** A page origin: a tiny server for the test page and the Socket.IO browser bundle. */
async function pageServer(): Promise<{ origin: string; server: Server }> {
  const server = createServer((req, res) => {
    if (req.url === '/socket.io.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(CLIENT_BUNDLE);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(PAGE);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('a real browser through the load balancer', () => {
  let browser: Browser;
  let cluster: Cluster;
  let lb: HaproxyHandle;
  let allowed: { origin: string; server: Server };
  let forbidden: { origin: string; server: Server };

  beforeAll(async () => {
    allowed = await pageServer();
    forbidden = await pageServer();
    cluster = await startCluster({ redis: inject('redis'), gateways: 2, env: { CORS_ORIGINS: allowed.origin, TRUST_PROXY: 'true' } });
    lb = await startHaproxy({ gateways: cluster.gateways.map((g) => `127.0.0.1:${g.port}`) });
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await lb?.stop();
    await cluster?.stop();
    for (const s of [allowed, forbidden]) s?.server.close();
  });

  const open = async (origin: string): Promise<Page> => {
    const page = await (await browser.newContext()).newPage();
    await page.goto(origin);
    return page;
  };

  it('connects from an allowed origin over polling then websocket, sticky through HAProxy, and exchanges messages', async () => {
    const alice = await open(allowed.origin);
    const bob = await open(allowed.origin);
    const a = await alice.evaluate(([url, token]) => (globalThis as unknown as PageGlobals).session(url, token, ['polling', 'websocket']), [lb.url, await cluster.token({ sub: 'browser-alice' })] as const);
    const b = await bob.evaluate(([url, token]) => (globalThis as unknown as PageGlobals).session(url, token, ['polling', 'websocket']), [lb.url, await cluster.token({ sub: 'browser-bob' })] as const);
    expect(a).toMatchObject({ ok: true, session: { userId: 'browser-alice' } });
    expect(b).toMatchObject({ ok: true, session: { userId: 'browser-bob' } });
    await alice.waitForFunction(() => (globalThis as unknown as PageGlobals).socket.io.engine.transport.name === 'websocket');

    for (const page of [alice, bob]) {
      const ack = await page.evaluate(() => (globalThis as unknown as PageGlobals).socket.emitWithAck('room:join', { room: 'public:browser' }));
      expect(ack).toMatchObject({ ok: true });
    }
    const sent = await alice.evaluate(() => (globalThis as unknown as PageGlobals).socket.emitWithAck('room:publish', { room: 'public:browser', data: { text: 'from a browser' } }));
    expect(sent).toMatchObject({ ok: true });
    await bob.waitForFunction(() => (globalThis as unknown as PageGlobals).received.length === 1);
    expect(await bob.evaluate(() => (globalThis as unknown as PageGlobals).received[0])).toMatchObject({ from: { userId: 'browser-alice' }, data: { text: 'from a browser' } });
  });

  it('refuses a forbidden origin: a typed ORIGIN_FORBIDDEN over websocket, no session over polling', async () => {
    const page = await open(forbidden.origin);
    const token = await cluster.token({ sub: 'browser-mallory' });
    const ws = await page.evaluate(([url, t]) => (globalThis as unknown as PageGlobals).session(url, t, ['websocket']), [lb.url, token] as const);
    expect(ws).toEqual({ ok: false, message: 'ORIGIN_FORBIDDEN', data: { code: 'ORIGIN_FORBIDDEN', message: 'Origin not allowed' } });
    const polling = await page.evaluate(([url, t]) => (globalThis as unknown as PageGlobals).session(url, t, ['polling']), [lb.url, token] as const);
    expect(polling).toMatchObject({ ok: false });
  });
});

/** What the test page defines, as seen from the test. */
interface PageGlobals {
    session(url: string, token: string, transports: string[]): Promise<{ ok: boolean; session?: unknown; message?: string; data?: unknown }>;
    socket: {
      emitWithAck(event: string, payload: unknown): Promise<unknown>;
      io: { engine: { transport: { name: string } } };
    };
    received: unknown[];
}
