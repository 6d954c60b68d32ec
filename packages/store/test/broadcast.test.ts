import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import { Emitter } from '@socket.io/redis-emitter';
import { Redis } from 'ioredis';
import { decode, encode } from 'notepack.io';
import { Server } from 'socket.io';
import { io as ioClient, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ClientToServerEvents, Notification, ServerToClientEvents } from '@switchboard/protocol';
import { eventually, randomKeyPrefix, waitFor } from '@switchboard/testkit';
import { Broadcaster, BroadcastEncoder, type Publication } from '../src/broadcast.js';
import { waitReady } from '../src/redis.js';

const KEY = 'sb:io';
const note: Notification = { id: 'n-1', type: 'greeting', title: 'Hi', data: { a: [1, 2] }, ts: 1_700_000_000_000 };

/** A pub/sub client that records what a sharded adapter sends instead of sending it. */
function recordingClient() {
  const sent: { channel: string; message: Buffer | string }[] = [];
  const client = Object.assign(new EventEmitter(), {
    spublish: async (channel: string, message: Buffer | string) => {
      sent.push({ channel, message });
      return 0;
    },
    ssubscribe: async () => 1,
    sunsubscribe: async () => 1,
  });
  return { client, sent };
}

/** What the sharded adapter itself publishes for `send(io)`, with its uid. */
function shardedAdapterOutput(send: (io: Server<ClientToServerEvents, ServerToClientEvents>) => unknown) {
  const pub = recordingClient();
  const sub = recordingClient();
  const io = new Server<ClientToServerEvents, ServerToClientEvents>({
    adapter: createShardedAdapter(pub.client, sub.client, { channelPrefix: KEY, subscriptionMode: 'dynamic' }),
  });
  const uid = (io.of('/').adapter as unknown as { uid: string }).uid;
  void send(io);
  return { sent: pub.sent, uid };
}

/** A publication of ours with the adapter's uid in place of ours: what must then be the same bytes. */
function asIfFrom(uid: string, p: Publication): { channel: string; message: Buffer | string } {
  const message = typeof p.message === 'string' ? p.message.replace('"uid":"switchboard-server"', `"uid":"${uid}"`) : p.message;
  return { channel: p.channel, message };
}

describe('BroadcastEncoder, sharded: the bytes the sharded adapter publishes', () => {
  const encoder = new BroadcastEncoder(KEY, 'sharded');

  it('to one room: the room\'s own channel', () => {
    const { sent, uid } = shardedAdapterOutput((io) => io.to('user:ann').emit('notification', note));
    const ours = encoder.emit({ rooms: ['user:ann'] }, 'notification', note);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.channel).toBe('sb:io#/#user:ann#');
    expect(ours.map((p) => asIfFrom(uid, p))).toEqual(sent);
    expect(ours[0]!.sharded).toBe(true);
  });

  it('to several rooms: one message per room, each what the adapter sends to that room alone', () => {
    const rooms = ['user:ann', 'user:bob', 'public:team/a'];
    const ours = encoder.emit({ rooms }, 'notification', note);
    expect(ours).toHaveLength(3);
    rooms.forEach((room, i) => {
      const { sent, uid } = shardedAdapterOutput((io) => io.to(room).emit('notification', note));
      expect(asIfFrom(uid, ours[i]!)).toEqual(sent[0]);
    });
  });

  it('to everyone, and to a 20-character room (it may be a socket id): the namespace channel', () => {
    const all = shardedAdapterOutput((io) => io.emit('notification', note));
    expect(all.sent[0]!.channel).toBe('sb:io#/#');
    expect(asIfFrom(all.uid, encoder.emit({}, 'notification', note)[0]!)).toEqual(all.sent[0]);
    const room = 'public:abcdefghijklm';
    expect(room).toHaveLength(20);
    const twenty = shardedAdapterOutput((io) => io.to(room).emit('notification', note));
    expect(twenty.sent[0]!.channel).toBe('sb:io#/#');
    expect(asIfFrom(twenty.uid, encoder.emit({ rooms: [room] }, 'notification', note)[0]!)).toEqual(twenty.sent[0]);
  });

  it('with rooms left out, and a disconnect of a room\'s sockets', () => {
    const except = shardedAdapterOutput((io) => io.to('public:a').except('user:ann').emit('room:message', { room: 'public:a', id: '1-0', ts: 1, from: { userId: '#server' }, data: null }));
    const oursExcept = encoder.emit({ rooms: ['public:a'], except: ['user:ann'] }, 'room:message', { room: 'public:a', id: '1-0', ts: 1, from: { userId: '#server' }, data: null });
    expect(asIfFrom(except.uid, oursExcept[0]!)).toEqual(except.sent[0]);
    const disconnect = shardedAdapterOutput((io) => io.in('user:ann').disconnectSockets(true));
    expect(asIfFrom(disconnect.uid, encoder.disconnect(['user:ann'], true)[0]!)).toEqual(disconnect.sent[0]);
  });

  it('binary data: msgpack, as the adapter does', () => {
    const withBinary = { ...note, data: { blob: Buffer.from([1, 2, 3]) } };
    const { sent } = shardedAdapterOutput((io) => io.to('user:ann').emit('notification', withBinary));
    const [ours] = encoder.emit({ rooms: ['user:ann'] }, 'notification', withBinary);
    expect(Buffer.isBuffer(ours!.message)).toBe(true);
    expect(Buffer.isBuffer(sent[0]!.message)).toBe(true);
    expect(ours!.channel).toBe(sent[0]!.channel);
    // the same message but for the uid (msgpack stores it as a string of another length)
    const adapters = decode(sent[0]!.message as Buffer) as { uid: string };
    expect(decode(ours!.message as Buffer)).toEqual({ ...adapters, uid: 'switchboard-server' });
    expect(encode({ ...adapters, uid: 'switchboard-server' })).toEqual(ours!.message);
  });
});

describe('BroadcastEncoder, classic: what the Redis emitter publishes', () => {
  it('captures the emitter\'s own encoding, to rooms, to everyone and for disconnects', () => {
    const encoder = new BroadcastEncoder(KEY, 'classic');
    const sent: { channel: string; message: Buffer | string; sharded: boolean }[] = [];
    const emitter = new Emitter<ServerToClientEvents>({ publish: (channel: string, message: Buffer | string) => sent.push({ channel, message, sharded: false }) }, { key: KEY });
    emitter.to('user:ann').emit('notification', note);
    emitter.to(['user:ann', 'user:bob']).emit('notification', note);
    emitter.emit('notification', note);
    emitter.in('user:ann').disconnectSockets(true);
    expect([
      ...encoder.emit({ rooms: ['user:ann'] }, 'notification', note),
      ...encoder.emit({ rooms: ['user:ann', 'user:bob'] }, 'notification', note),
      ...encoder.emit({}, 'notification', note),
      ...encoder.disconnect(['user:ann'], true),
    ]).toEqual(sent);
  });
});

describe('Broadcaster against real adapters on a real Redis', () => {
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
    redis.on('error', () => {});
  });
  afterAll(() => redis.quit());

  for (const mode of ['classic', 'sharded'] as const) {
    it(`${mode}: a gateway's members receive, others do not, and a disconnect disconnects`, async () => {
      const key = `${randomKeyPrefix()}:io`;
      const pub = redis.duplicate();
      const sub = redis.duplicate();
      for (const c of [pub, sub]) c.on('error', () => {});
      // as the gateway does: a subscription sent while the client is still connecting races its ready check
      await Promise.all([waitReady(pub), waitReady(sub)]);
      const http = createServer();
      const io = new Server<ClientToServerEvents, ServerToClientEvents>(http, {
        adapter: mode === 'sharded' ? createShardedAdapter(pub, sub, { channelPrefix: key, subscriptionMode: 'dynamic' }) : createAdapter(pub, sub, { key }),
      });
      io.on('connection', (s) => void s.join(String(s.handshake.auth.room)));
      await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
      const connect = async (room: string) => {
        const c: Socket<ServerToClientEvents, ClientToServerEvents> = ioClient(url, { transports: ['websocket'], auth: { room }, forceNew: true, reconnection: false });
        await waitFor(c, 'connect');
        return c;
      };
      const [ann, bob] = [await connect('user:ann'), await connect('user:bob')];
      try {
        const broadcaster = new Broadcaster(redis, key, mode);
        const missed: Notification[] = [];
        bob.on('notification', (n) => missed.push(n));
        // the adapter subscribes as its sockets join rooms: a message published before is not for it
        await eventually(async () =>
          mode === 'sharded'
            ? ((await redis.call('PUBSUB', 'SHARDCHANNELS', `${key}#/#user:*`)) as string[]).length === 2
            : ((await redis.call('PUBSUB', 'CHANNELS', `${key}*`)) as string[]).length > 0,
        );
        const got = waitFor(ann, 'notification');
        await broadcaster.to('user:ann').emit('notification', note);
        expect(await got).toEqual(note);
        const everyone = waitFor(bob, 'notification');
        await broadcaster.to([]).emit('notification', { ...note, id: 'all' });
        expect((await everyone).id).toBe('all');
        expect(missed.map((n) => n.id)).toEqual(['all']);
        const gone = waitFor(ann, 'disconnect');
        await broadcaster.in('user:ann').disconnectSockets(true);
        await gone;
      } finally {
        ann.close();
        bob.close();
        await io.close();
        pub.disconnect();
        sub.disconnect();
      }
    });
  }
});
