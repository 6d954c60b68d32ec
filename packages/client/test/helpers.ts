import type { Cluster } from '@switchboard/harness';
import type { TokenClaims } from '@switchboard/testkit';
import type { ServerToClientEvents } from '@switchboard/protocol';
import { createClient, type ClientOptions, type SwitchboardClient } from '../src/index.js';

type Payload<E extends keyof ServerToClientEvents> = Parameters<ServerToClientEvents[E]>[0];

export interface ClientSpec extends Partial<ClientOptions> {
  /** Gateway to connect to. @default 0 */
  gateway?: number;
}

/** Creates SDK clients against a cluster's gateways and closes them all at the end of each test. */
export function clientFactory(cluster: () => Cluster) {
  const open = new Set<SwitchboardClient>();

  function create(spec: ClientSpec = {}): SwitchboardClient {
    const { gateway = 0, socket, ...options } = spec;
    const g = cluster().gateways[gateway];
    if (!g) throw new Error(`no gateway ${gateway}`);
    const client = createClient({
      url: g.url,
      ...options,
      // websocket only, quick reconnects: tests wait for events, not for backoff
      socket: { transports: ['websocket'], reconnectionDelay: 50, reconnectionDelayMax: 200, ...socket },
    });
    open.add(client);
    return client;
  }

  /** A connected client of user `claims.sub` (a fresh access token unless `spec.token` is given). */
  async function connect(claims: TokenClaims | string, spec: ClientSpec = {}): Promise<SwitchboardClient> {
    const c = typeof claims === 'string' ? { sub: claims } : claims;
    const client = create({ token: await cluster().token(c), ...spec });
    await client.ready();
    return client;
  }

  function closeAll(): void {
    for (const client of open) client.close();
    open.clear();
  }

  return { create, connect, closeAll };
}

/** Resolves with the next `event` the client hands to its listeners. */
export function next<E extends keyof ServerToClientEvents>(
  client: SwitchboardClient,
  event: E,
  timeoutMs = 5000,
): Promise<Payload<E>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for "${event}"`));
    }, timeoutMs);
    const off = client.on(event, ((payload: Payload<E>) => {
      clearTimeout(timer);
      off();
      resolve(payload);
    }) as ServerToClientEvents[E]);
  });
}

/** Every payload of `event` the client hands to its listeners. */
export function record<E extends keyof ServerToClientEvents>(client: SwitchboardClient, event: E): Payload<E>[] {
  const seen: Payload<E>[] = [];
  client.on(event, ((payload: Payload<E>) => seen.push(payload)) as ServerToClientEvents[E]);
  return seen;
}

/**
 * Closes the client's connection from the server side, at the transport level (as a network
 * drop would), and resolves once the client has noticed.
 */
export async function dropConnection(cluster: Cluster, client: SwitchboardClient): Promise<void> {
  const session = client.session;
  if (!session) throw new Error('the client has no session');
  const pod = cluster.gateways.find((g) => g.podId === session.pod);
  const socket = pod?.gateway?.io.of('/').sockets.get(session.socketId);
  if (!socket) throw new Error(`socket ${session.socketId} is not on an in-process gateway`);
  const noticed = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the client did not notice the dropped connection')), 5000);
    client.socket.once('disconnect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  socket.conn.close();
  await noticed;
}

/** The `exp` claim of a JWT, in ms since the epoch. */
export function expiryMs(jwt: string): number {
  const payload = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as { exp: number };
  return payload.exp * 1000;
}
