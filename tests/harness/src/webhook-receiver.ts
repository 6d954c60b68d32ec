import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LifecycleEvent } from '@switchboard/protocol';

/**
 * A webhook receiver for tests and benchmarks, written as a backend would with Node's `crypto`
 * only (the example of docs/events.md): it checks every request's signature and timestamp,
 * records the events of the good ones, and can be made to fail.
 */

/** What a receiver does with a request: `ok` answers 204, `fail` 503, `drop` closes the connection unanswered. */
export type ReceiverMode = 'ok' | 'fail' | 'drop';

export interface ReceivedRequest {
  timestamp: string | undefined;
  signature: string | undefined;
  body: Buffer;
}

export interface WebhookReceiver {
  url: string;
  /** Events of verified requests answered 2xx, in arrival order (duplicates kept). */
  events: LifecycleEvent[];
  /** When each of `events` arrived (ms since the epoch), index for index. */
  arrivedAt: number[];
  /** Verified requests answered 2xx. */
  requests: ReceivedRequest[];
  /** Requests whose signature or timestamp did not verify (answered 401). */
  refused: number;
  /** Requests answered 503 or dropped. */
  failed: number;
  mode: ReceiverMode;
  close(): Promise<void>;
}

/** SPEC §7a's check: HMAC-SHA256 of "<timestamp>.<raw body>", timestamp within `toleranceMs` of now. */
export function verifySignature(secret: string, req: ReceivedRequest, toleranceMs = 5 * 60_000, now = Date.now()): boolean {
  const { timestamp, signature, body } = req;
  if (!timestamp || !signature || !/^\d+$/.test(timestamp)) return false;
  if (Math.abs(now - Number(timestamp)) > toleranceMs) return false;
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`);
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  const receiver: Omit<WebhookReceiver, 'url' | 'close'> = { events: [], arrivedAt: [], requests: [], refused: 0, failed: 0, mode: 'ok' };
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (receiver.mode === 'drop') {
        receiver.failed++;
        req.socket.destroy();
        return;
      }
      if (receiver.mode === 'fail') {
        receiver.failed++;
        res.writeHead(503).end();
        return;
      }
      const request: ReceivedRequest = {
        timestamp: req.headers['x-switchboard-timestamp'] as string | undefined,
        signature: req.headers['x-switchboard-signature'] as string | undefined,
        body: Buffer.concat(chunks),
      };
      if (req.method !== 'POST' || !verifySignature(secret, request)) {
        receiver.refused++;
        res.writeHead(401).end();
        return;
      }
      const { events } = JSON.parse(request.body.toString('utf8')) as { events: LifecycleEvent[] };
      receiver.requests.push(request);
      receiver.events.push(...events);
      const now = Date.now();
      for (let i = 0; i < events.length; i++) receiver.arrivedAt.push(now);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(receiver, {
    url: `http://127.0.0.1:${port}/hooks`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
