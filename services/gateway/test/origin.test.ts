import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startCluster, type Cluster } from '@switchboard/harness';
import { originAllowed, sameOrigin } from '../src/handshake.js';

describe('sameOrigin and originAllowed', () => {
  it('accepts an Origin naming the Host, default ports normalised', () => {
    const same: [string, string][] = [
      ['http://rt.example.com', 'rt.example.com'],
      ['http://rt.example.com:80', 'rt.example.com'],
      ['http://rt.example.com', 'rt.example.com:80'],
      ['https://rt.example.com', 'rt.example.com'],
      ['https://rt.example.com:443', 'rt.example.com'],
      ['https://rt.example.com', 'rt.example.com:443'],
      ['ws://rt.example.com', 'rt.example.com:80'],
      ['wss://rt.example.com', 'rt.example.com:443'],
      ['wss://rt.example.com:8443', 'rt.example.com:8443'],
      ['http://127.0.0.1:3000', '127.0.0.1:3000'],
      ['http://[::1]:3000', '[::1]:3000'],
      // host names are case-insensitive, on either side
      ['https://RT.Example.COM', 'rt.example.com'],
      ['http://rt.example.com:3000', 'RT.EXAMPLE.com:3000'],
      // python-socketio's websocket-client sends http://<Host> even over wss on 443
      ['http://rt.example.com', 'rt.example.com'],
    ];
    for (const [origin, host] of same) expect(sameOrigin(origin, host), `${origin} at ${host}`).toBe(true);
  });

  it('refuses another host, another port, a port the scheme does not default to, and non-origins', () => {
    const other: [string, string | undefined][] = [
      ['https://evil.example', 'rt.example.com'],
      ['https://rt.example.com.evil.example', 'rt.example.com'],
      ['http://rt.example.com:3001', 'rt.example.com:3000'],
      ['http://rt.example.com', 'rt.example.com:3000'],
      ['http://rt.example.com:3000', 'rt.example.com'],
      ['https://rt.example.com', 'rt.example.com:80'],
      ['http://rt.example.com', 'rt.example.com:443'],
      ['http://localhost:3000', '127.0.0.1:3000'],
      ['null', 'rt.example.com'],
      ['file:///index.html', 'rt.example.com'],
      ['chrome-extension://abcdef', 'abcdef'],
      ['https://rt.example.com', undefined],
      ['https://rt.example.com', 'rt.example.com:notaport'],
      ['https://rt.example.com', 'user@rt.example.com'],
      ['https://rt.example.com', ''],
    ];
    for (const [origin, host] of other) expect(sameOrigin(origin, host), `${origin} at ${String(host)}`).toBe(false);
  });

  it('admits no Origin, same-origin, and the allow-list; nothing else', () => {
    expect(originAllowed(undefined, 'rt.example.com', [])).toBe(true);
    expect(originAllowed('https://rt.example.com', 'rt.example.com', [])).toBe(true);
    expect(originAllowed('https://app.example', 'rt.example.com', ['https://app.example'])).toBe(true);
    expect(originAllowed('https://evil.example', 'rt.example.com', ['https://app.example'])).toBe(false);
    expect(originAllowed('https://evil.example', 'rt.example.com', [])).toBe(false);
    expect(originAllowed('https://evil.example', 'rt.example.com', '*')).toBe(true);
  });
});

describe('origin check on real sockets, CORS_ORIGINS unset', () => {
  let cluster: Cluster;
  let port: number;
  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 1 });
    port = cluster.gateways[0]!.port;
  });
  afterAll(() => cluster.stop());

  it('admits an Origin equal to the URL connected to, as python-socketio and Starscream send', async () => {
    for (const origin of [`http://127.0.0.1:${port}`, `ws://127.0.0.1:${port}`]) {
      const c = await cluster.connect({ sub: 'native-app', options: { transports: ['websocket'], extraHeaders: { origin } } });
      expect(c.session.userId).toBe('native-app');
      c.close();
    }
    const polling = await cluster.connect({ sub: 'native-app', options: { transports: ['polling'], extraHeaders: { origin: `http://127.0.0.1:${port}` } } });
    expect(polling.session.userId).toBe('native-app');
    polling.close();
  });

  it('compares the host case-insensitively, against the Host header', async () => {
    const c = await cluster.connect({
      sub: 'native-app',
      options: { transports: ['websocket'], extraHeaders: { host: `Gateway.Example:${port}`, origin: `http://gateway.example:${port}` } },
    });
    expect(c.session.userId).toBe('native-app');
    c.close();
  });

  it('refuses a cross-site origin on websocket and polling, X-Forwarded-Host or not', async () => {
    const refusals: [string, Record<string, string>][] = [
      ['another site', { origin: 'https://evil.example' }],
      ['the same host on another port', { origin: `http://127.0.0.1:${port + 1}` }],
      ['another name for the host', { origin: `http://localhost:${port}` }],
      ['a forged X-Forwarded-Host', { origin: 'https://evil.example', 'x-forwarded-host': 'evil.example' }],
    ];
    for (const transports of [['websocket'], ['polling']]) {
      for (const [what, extraHeaders] of refusals) {
        const r = await cluster.refused({ sub: 'browser', options: { transports, extraHeaders } });
        expect({ what, transports, ...r }).toEqual({
          what,
          transports,
          message: 'ORIGIN_FORBIDDEN',
          data: { code: 'ORIGIN_FORBIDDEN', message: expect.any(String) },
        });
      }
    }
  });
});
