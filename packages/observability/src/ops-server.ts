import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from 'pino';

export interface HealthChecks {
  /** Alive: the process answers. */
  live?: () => boolean;
  /** Ready: dependencies reachable and not draining. */
  ready: () => Promise<boolean> | boolean;
}

/** Answers `/healthz` and `/readyz`; returns false when the path is neither. */
export async function answerHealth(
  req: IncomingMessage,
  res: ServerResponse,
  checks: HealthChecks,
): Promise<boolean> {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/healthz') {
    const ok = checks.live ? checks.live() : true;
    send(res, ok ? 200 : 503, { status: ok ? 'ok' : 'unhealthy' });
    return true;
  }
  if (path === '/readyz') {
    let ok: boolean;
    try {
      ok = await checks.ready();
    } catch {
      ok = false;
    }
    send(res, ok ? 200 : 503, { status: ok ? 'ready' : 'not ready' });
    return true;
  }
  return false;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

export interface OpsServer {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/** The operations port: `/metrics`, `/healthz`, `/readyz`. Never the public port. */
export async function startOpsServer(options: {
  port: number;
  host?: string;
  registry: Registry;
  checks: HealthChecks;
  logger: Logger;
}): Promise<OpsServer> {
  const { registry, checks, logger } = options;
  const server = createServer((req, res) => {
    void (async () => {
      try {
        if (await answerHealth(req, res, checks)) return;
        if ((req.url ?? '').split('?')[0] === '/metrics' && req.method === 'GET') {
          const body = await registry.metrics();
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(body);
          return;
        }
        send(res, 404, { error: { code: 'NOT_FOUND', message: 'not found' } });
      } catch (err) {
        logger.error({ err }, 'ops request failed');
        if (!res.headersSent) send(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
