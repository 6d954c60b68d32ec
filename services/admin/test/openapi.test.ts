import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startCluster, type Cluster } from '@switchboard/harness';
import { schemas } from '../src/index.js';
import { assertShape, startAdmin, type TestAdmin } from './helpers.js';

interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown>; parameters?: { name: string; in: string }[] }>>;
}

/** Every route of SPEC §7, and the webhook routes of §7a, as OpenAPI paths. */
const EXPECTED = {
  '/healthz': ['get'],
  '/readyz': ['get'],
  '/metrics': ['get'],
  '/docs': ['get'],
  '/openapi.json': ['get'],
  '/v1/stats': ['get'],
  '/v1/users': ['get'],
  '/v1/users/{userId}': ['get'],
  '/v1/users/{userId}/disconnect': ['post'],
  '/v1/rooms': ['get'],
  '/v1/rooms/{room}': ['get'],
  '/v1/rooms/{room}/messages': ['post'],
  '/v1/notifications': ['post'],
  '/v1/queues/notifications': ['get'],
  '/v1/queues/notifications/jobs/{id}/retry': ['post'],
  '/v1/webhooks': ['get'],
  '/v1/queues/webhooks': ['get'],
  '/v1/queues/webhooks/jobs/{id}/retry': ['post'],
  '/console': ['get'],
  '/console/session': ['delete', 'get', 'post'],
};

/** A Chromium on PATH, for the Swagger UI check. */

describe('OpenAPI document, docs, metrics', () => {
  let cluster: Cluster;
  let admin: TestAdmin;

  beforeAll(async () => {
    cluster = await startCluster({ redis: inject('redis'), gateways: 2 });
    admin = await startAdmin({ redis: cluster.redisEnv, keyPrefix: cluster.keyPrefix });
  });
  afterAll(async () => {
    await admin?.close();
    await cluster?.stop();
  });

  it('serves an OpenAPI 3.1 document at /openapi.json that validates and covers every route', async () => {
    const res = await admin.call<OpenApiDocument>('GET', '/openapi.json', { auth: null });
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toBe('3.1.0');
    const result = await new Validator().validate(doc as unknown as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);

    const paths = Object.fromEntries(Object.entries(doc.paths).map(([p, item]) => [p, Object.keys(item).sort()]));
    expect(paths).toEqual(EXPECTED);

    for (const [path, item] of Object.entries(doc.paths)) {
      for (const op of Object.values(item)) {
        if (path.startsWith('/v1/')) {
          expect(op.security, path).toEqual([{ bearer: [] }]);
          expect(Object.keys(op.responses), path).toEqual(expect.arrayContaining(['401', '403', '429']));
        } else if (path === '/console/session' && op !== item.post) {
          // signing in needs no session; reading and ending one does
          expect(op.security, path).toEqual([{ consoleSession: [] }]);
        } else {
          expect(op.security, path).toBeUndefined();
        }
      }
    }
    const roomParam = doc.paths['/v1/rooms/{room}']!.get!.parameters!.find((p) => p.name === 'room');
    expect(roomParam).toMatchObject({ in: 'path' });
    // the same document behind the Swagger UI
    const uiDoc = await admin.call<OpenApiDocument>('GET', '/docs/json', { auth: null });
    expect(uiDoc.body.paths).toEqual(doc.paths);
  });

  it('serves the Swagger UI at /docs without credentials', async () => {
    const page = await admin.call<string>('GET', '/docs', { auth: null });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.body).toContain('swagger-ui-bundle.js');
    const script = await admin.call<string>('GET', '/docs/static/swagger-initializer.js', { auth: null });
    expect(script.status).toBe(200);
    expect(script.body).toContain('SwaggerUIBundle');
  });

  it('renders the Swagger UI in a browser under the CSP', async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    try {
      const page = await browser.newPage();
      const violations: string[] = [];
      page.on('console', (m) => {
        if (/content security policy/i.test(m.text())) violations.push(m.text());
      });
      const response = await page.goto(`${admin.url}/docs/`);
      expect(response?.headers()['content-security-policy']).toContain("script-src 'self'");
      // every operation of the document is rendered from /docs/json
      await page.waitForSelector('.opblock', { timeout: 15_000 });
      const operations = await page.locator('.opblock').count();
      expect(operations).toBe(Object.values(EXPECTED).flat().length);
      expect(violations).toEqual([]);
    } finally {
      await browser.close();
    }
  });

  it('answers the open routes without credentials', async () => {
    const health = await admin.call('GET', '/healthz', { auth: null });
    expect(health).toMatchObject({ status: 200, body: { status: 'ok' } });
    assertShape(schemas.HealthResponse, health.body);
    const ready = await admin.call('GET', '/readyz', { auth: null });
    expect(ready).toMatchObject({ status: 200, body: { status: 'ready' } });
  });

  it('labels HTTP metrics by route template and status, never by raw URL', async () => {
    await admin.call('GET', '/v1/users/metric-user-42');
    await admin.call('GET', '/v1/rooms/public%3Ametric-room-42');
    await admin.call('GET', '/v1/stats', { auth: null });
    await admin.call('GET', '/v1/no-such-route-42');
    const res = await admin.call<string>('GET', '/metrics', { auth: null });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = res.body;
    expect(text).not.toMatch(/metric-user-42|metric-room-42|no-such-route-42/);
    expect(text).toMatch(/switchboard_admin_http_requests_total\{method="GET",route="\/v1\/users\/:userId",status="404"\} 1/);
    expect(text).toMatch(/switchboard_admin_http_requests_total\{method="GET",route="\/v1\/rooms\/:room",status="404"\} 1/);
    expect(text).toMatch(/switchboard_admin_http_requests_total\{method="GET",route="\/v1\/stats",status="401"\} 1/);
    expect(text).toMatch(/switchboard_admin_http_requests_total\{method="GET",route="unmatched",status="404"\} 1/);
    expect(text).toMatch(/switchboard_admin_http_request_duration_seconds_bucket\{le="[^"]+",method="GET",route="\/v1\/users\/:userId"\}/);
    expect(text).toMatch(/switchboard_queue_jobs\{state="waiting"\} 0/);
  });
});
