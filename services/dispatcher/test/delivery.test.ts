import { randomUUID } from 'node:crypto';
import { Emitter } from '@socket.io/redis-emitter';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createProducer, type Producer } from '@switchboard/producer';
import { ioKey, NOTIFICATION_MAX_USER_IDS, NOTIFICATIONS_QUEUE, userRoom, type Notification, type ServerToClientEvents } from '@switchboard/protocol';
import { InboxStore, keys } from '@switchboard/store';
import { deleteKeys, eventually, randomKeyPrefix } from '@switchboard/testkit';
import { connect, primeClients, startDispatcher, startIoServer, type InProcessDispatcher, type IoServer, type TestClient } from './helpers.js';

const prefix = randomKeyPrefix();
let redisUrl: string;
let redis: Redis;
let serverA: IoServer;
let serverB: IoServer;
let dispatcher: InProcessDispatcher;
let producer: Producer;
/** A plain BullMQ queue, as a backend service without the SDK would use. */
let plain: Queue;
let probe: Emitter<ServerToClientEvents>;
let inbox: InboxStore;
let clients: TestClient[] = [];

beforeAll(async () => {
  redisUrl = inject('redisUrl');
  redis = new Redis(redisUrl);
  redis.on('error', () => {});
  [serverA, serverB] = await Promise.all([startIoServer(redisUrl, prefix), startIoServer(redisUrl, prefix)]);
  dispatcher = await startDispatcher(redisUrl, prefix);
  producer = createProducer({ connection: redisUrl, keyPrefix: prefix });
  plain = new Queue(NOTIFICATIONS_QUEUE, { connection: redis, prefix });
  plain.on('error', () => {});
  probe = new Emitter<ServerToClientEvents>(redis, { key: ioKey(prefix) });
  inbox = new InboxStore(redis, keys(prefix));
});

afterEach(() => {
  for (const c of clients) c.close();
  clients = [];
});

afterAll(async () => {
  await producer?.close();
  await plain?.close();
  await dispatcher?.close();
  await Promise.all([serverA?.close(), serverB?.close()]);
  await deleteKeys(redis, prefix);
  await redis.quit();
});

/** Fresh user ids per test keep tests independent. */
function users(n: number): string[] {
  const tag = randomUUID().slice(0, 6);
  return Array.from({ length: n }, (_, i) => `u${i}-${tag}`);
}

async function clientsOn(...specs: Array<[IoServer, { userId?: string; rooms?: string[] }]>): Promise<TestClient[]> {
  const made = await Promise.all(specs.map(([server, auth]) => connect(server.port, auth)));
  clients.push(...made);
  await primeClients(probe, made);
  return made;
}

/**
 * Sends a broadcast through the dispatcher after everything before it was delivered, and waits
 * until every client has it: whatever else was meant for a client has arrived by then.
 */
async function marker(all: readonly TestClient[]): Promise<void> {
  const { id } = await producer.notify({ to: { broadcast: true }, type: 'test.marker' });
  await Promise.all(all.map((c) => c.next((n) => n.id === id)));
}

const byId = (id: string) => (n: Notification) => n.id === id;

async function completed(jobIds: readonly string[]): Promise<void> {
  await eventually(
    async () => {
      const states = await Promise.all(jobIds.map(async (id) => (await plain.getJob(id))?.getState()));
      return states.every((s) => s === 'completed');
    },
    { what: `jobs ${jobIds.join(', ')} completed` },
  );
}

describe('dispatcher delivery', () => {
  it('delivers an SDK notification to every socket of a user, across two servers', async () => {
    const [alice] = users(1);
    const [onA, onB] = await clientsOn([serverA, { userId: alice }], [serverB, { userId: alice }]);
    const { id, jobId } = await producer.notify({ to: { userId: alice! }, type: 'greeting', title: 'Hello' });
    expect(id).toBe(`job:${jobId}`);

    const [a, b] = await Promise.all([onA!.next(byId(id)), onB!.next(byId(id))]);
    const job = await plain.getJob(jobId);
    expect(a).toEqual({ id, type: 'greeting', title: 'Hello', ts: job!.timestamp });
    expect(b).toEqual(a);
    expect(Object.keys(a)).toEqual(['id', 'type', 'title', 'ts']);
  });

  it('delivers a job added with plain BullMQ, any job name, no options', async () => {
    const [alice] = users(1);
    const [onA, onB] = await clientsOn([serverA, { userId: alice }], [serverB, { userId: alice }]);
    const job = await plain.add('anything', {
      to: { userId: alice },
      type: 'invoice.paid',
      body: 'Paid',
      data: { amount: 12 },
    });

    const id = `job:${job.id}`;
    const got = await onA!.next(byId(id));
    expect(got).toEqual({ id, type: 'invoice.paid', body: 'Paid', data: { amount: 12 }, ts: job.timestamp });
    expect(await onB!.next(byId(id))).toEqual(got);
    expect((await inbox.list(alice!, {})).items).toEqual([{ ...got, read: false }]);
  });

  it('delivers to exactly the listed userIds', async () => {
    const [bob, carol, dave, erin] = users(4);
    const all = await clientsOn(
      [serverA, { userId: bob }],
      [serverB, { userId: carol }],
      [serverA, { userId: dave }],
      [serverB, { userId: erin }],
      [serverB, { userId: bob }],
    );
    const [toBob, toCarol, toDave, toErin, toBob2] = all;
    const { id } = await producer.notify({ to: { userIds: [bob!, carol!, bob!] }, type: 'team.invite' });

    await Promise.all([toBob!.next(byId(id)), toCarol!.next(byId(id)), toBob2!.next(byId(id))]);
    await marker(all);
    expect(toDave!.ids()).not.toContain(id);
    expect(toErin!.ids()).not.toContain(id);
    expect(toBob!.ids().filter((x) => x === id)).toHaveLength(1);
    expect(await inbox.unread(bob!)).toBe(1);
    expect(await inbox.unread(carol!)).toBe(1);
    expect(await inbox.unread(dave!)).toBe(0);
  });

  it('delivers a job to the largest audience, 1,000 users, and stores it for each', async () => {
    const listed = users(NOTIFICATION_MAX_USER_IDS);
    const [outsider] = users(1);
    const all = await clientsOn([serverA, { userId: listed[0] }], [serverB, { userId: listed.at(-1) }], [serverB, { userId: outsider }]);
    const [first, last, other] = all;
    const { id } = await producer.notify({ to: { userIds: listed }, type: 'big.team' });
    await Promise.all([first!.next(byId(id)), last!.next(byId(id))]);
    await marker(all);
    expect(other!.ids()).not.toContain(id);
    expect(await Promise.all(listed.map((u) => inbox.unread(u)))).toEqual(listed.map(() => 1));
    expect(await inbox.unread(outsider!)).toBe(0);
  });

  it('delivers a room notification to the room only, and stores nothing', async () => {
    const [fay, gus, hal] = users(3);
    const room = `public:lobby-${randomUUID().slice(0, 6)}`;
    const all = await clientsOn(
      [serverA, { userId: fay, rooms: [room] }],
      [serverB, { userId: gus, rooms: [room, 'public:elsewhere'] }],
      [serverB, { userId: hal, rooms: ['public:elsewhere'] }],
    );
    const [inA, inB, outside] = all;
    const { id } = await producer.notify({ to: { room }, type: 'room.news', persist: true });

    await Promise.all([inA!.next(byId(id)), inB!.next(byId(id))]);
    await marker(all);
    expect(outside!.ids()).not.toContain(id);
    expect(await inbox.list(fay!, {})).toEqual({ items: [], unread: 0 });
  });

  it('delivers a broadcast to everyone, and stores nothing', async () => {
    const [ivy, jon] = users(2);
    const all = await clientsOn([serverA, { userId: ivy }], [serverB, { userId: jon }], [serverB, {}]);
    const { id } = await producer.notify({ to: { broadcast: true }, type: 'maintenance', body: 'at noon' });
    const got = await Promise.all(all.map((c) => c.next(byId(id))));
    expect(got.every((n) => n.body === 'at noon')).toBe(true);
    expect(await inbox.unread(ivy!)).toBe(0);
  });

  it('stores user notifications in the inbox with unread counts, unless persist is false', async () => {
    const [kim, lee] = users(2);
    const [onKim] = await clientsOn([serverA, { userId: kim }]);
    const first = await producer.notify({ to: { userIds: [kim!, lee!] }, type: 'a', title: 'First' });
    const second = await producer.notify({ to: { userId: kim! }, type: 'b', data: { n: 2 } });
    const ephemeral = await producer.notify({ to: { userId: kim! }, type: 'c', persist: false });
    await onKim!.next(byId(ephemeral.id));
    await completed([first.jobId, second.jobId, ephemeral.jobId]);

    const page = await inbox.list(kim!, {});
    expect(page.unread).toBe(2);
    expect(page.items.map((i) => [i.id, i.type, i.read])).toEqual(
      expect.arrayContaining([
        [first.id, 'a', false],
        [second.id, 'b', false],
      ]),
    );
    expect(page.items).toHaveLength(2);
    expect(await inbox.unread(lee!)).toBe(1);
  });

  it('stores one inbox entry per id, however often it is enqueued', async () => {
    const [max] = users(1);
    const [onMax] = await clientsOn([serverA, { userId: max }]);
    const id = `order-${randomUUID().slice(0, 8)}`;
    const job = { id, to: { userId: max! }, type: 'order.shipped' };

    const viaSdk = await Promise.all([producer.notify(job), producer.notify(job)]);
    expect(viaSdk.map((r) => r.id)).toEqual([id, id]);
    // Plain BullMQ with other job ids: two jobs carrying the same notification id.
    const again = await Promise.all([plain.add('n', job, { jobId: `${id}-x` }), plain.add('n', job, { jobId: `${id}-y` })]);
    await completed([id, ...again.map((j) => j.id!)]);

    expect((await inbox.list(max!, {})).items.map((i) => i.id)).toEqual([id]);
    expect(await inbox.unread(max!)).toBe(1);
    await onMax!.next(byId(id));
    expect(onMax!.received.filter((n) => n.id === id).every((n) => n.type === 'order.shipped')).toBe(true);
  });

  it('fails invalid job data permanently with its reason, and keeps delivering', async () => {
    const [ned] = users(1);
    const [onNed] = await clientsOn([serverA, { userId: ned }]);
    const bad = await plain.add('n', { to: { userId: 'not valid!' }, type: 'x' }, { attempts: 5, backoff: 10 });
    const failed = await eventually(async () => ((await bad.getState()) === 'failed' ? plain.getJob(bad.id!) : undefined), {
      what: 'invalid job failed',
    });
    expect(failed.failedReason).toMatch(/^\/to/);
    expect(failed.attemptsMade).toBe(1);
    const metrics = await dispatcher.registry.getSingleMetricAsString('switchboard_dispatcher_jobs_total');
    expect(metrics).toMatch(/result="invalid"} 1$/m);

    const { id } = await producer.notify({ to: { userId: ned! }, type: 'still.working' });
    await onNed!.next(byId(id));
  });

  it('retries a failed attempt by the job options, with the same id and ts, publishing only once stored', async () => {
    const [pat, quin] = users(2);
    const [onPat, onQuin] = await clientsOn([serverA, { userId: pat }], [serverB, { userId: quin }]);
    // A key of the wrong type makes the inbox write fail until it is removed.
    const inboxKey = keys(prefix).inbox(pat!);
    await redis.set(inboxKey, 'not a zset');
    const job = await plain.add('n', { to: { userId: pat }, type: 'retry.me' }, {
      attempts: 5,
      backoff: { type: 'exponential', delay: 200 },
    });
    // enqueued together with the failing job: delivered all the same
    const { ids: others, jobIds } = await producer.notifyMany([
      { to: { userId: quin! }, type: 'unaffected' },
      { to: { userId: quin! }, type: 'unaffected' },
    ]);
    await Promise.all(others.map((id) => onQuin!.next(byId(id))));
    await completed(jobIds);
    const retrying = await eventually(async () => {
      const j = await plain.getJob(job.id!);
      return j && j.attemptsMade >= 1 ? j : undefined;
    }, { what: 'a failed attempt' });
    expect(retrying.failedReason).toMatch(/WRONGTYPE/);
    // Nothing was published for the failed attempt: a probe sent after it is the first to arrive.
    probe.to(userRoom(pat!)).emit('notification', { id: 'probe-after-failure', type: 'probe', ts: Date.now() });
    await onPat!.next(byId('probe-after-failure'));
    const id = `job:${job.id}`;
    expect(onPat!.received.filter((n) => n.id === id)).toEqual([]);

    await redis.del(inboxKey);
    const got = await onPat!.next(byId(id));
    expect(got.ts).toBe(job.timestamp);
    await completed([job.id!]);
    expect((await inbox.list(pat!, {})).items.map((i) => i.id)).toEqual([id]);
    const metrics = await dispatcher.registry.getSingleMetricAsString('switchboard_dispatcher_jobs_total');
    expect(metrics).toMatch(/result="retried"} [1-9]/);
  });

  it('counts completed jobs and observes delivery latency', async () => {
    const [oli] = users(1);
    const [onOli] = await clientsOn([serverA, { userId: oli }]);
    const { id, jobId } = await producer.notify({ to: { userId: oli! }, type: 'measured' });
    await onOli!.next(byId(id));
    await completed([jobId]);
    const latency = await dispatcher.registry.getSingleMetricAsString('switchboard_notification_delivery_latency_seconds');
    expect(latency).toMatch(/switchboard_notification_delivery_latency_seconds_count [1-9]/);
    expect(await dispatcher.dispatcher.ready()).toBe(true);
  });
  it('delivers an id reused by plain BullMQ jobs once, live and in the inbox, whatever BullMQ keeps', async () => {
    const [rae] = users(1);
    const [onRae] = await clientsOn([serverA, { userId: rae }]);
    const id = `dup-${randomUUID().slice(0, 8)}`;
    const data = { id, to: { userId: rae! }, type: 'dup.user' };
    // no jobId, and nothing kept once completed: only the ledger remembers the id
    const a = await plain.add('n', data, { removeOnComplete: true });
    await onRae!.next(byId(id));
    await eventually(async () => (await plain.getJob(a.id!)) === undefined, { what: 'the first job removed' });
    const b = await plain.add('n', data, { removeOnComplete: false });
    const c = await plain.add('n', data);
    await completed([b.id!, c.id!]);
    await marker([onRae!]);
    expect(onRae!.received.filter((n) => n.id === id)).toHaveLength(1);
    expect((await inbox.list(rae!, {})).items.map((i) => i.id)).toEqual([id]);
    const metrics = await dispatcher.registry.getSingleMetricAsString('switchboard_dispatcher_jobs_total');
    expect(metrics).toMatch(/result="duplicate"} [2-9]/);
  });

  it('publishes a room or broadcast notification with a reused id once, persist: false included', async () => {
    const [sam] = users(1);
    const room = `public:dup-${randomUUID().slice(0, 6)}`;
    const all = await clientsOn([serverA, { userId: sam, rooms: [room] }], [serverB, { userId: sam }]);
    const [inRoom, elsewhere] = all;
    const ids = ['room', 'all', 'live'].map((k) => `${k}-${randomUUID().slice(0, 6)}`);
    const jobs = [
      { id: ids[0], to: { room }, type: 'dup.room' },
      { id: ids[1], to: { broadcast: true }, type: 'dup.all' },
      { id: ids[2], to: { userId: sam! }, type: 'dup.live', persist: false },
    ];
    const added = [];
    for (let round = 0; round < 3; round++) for (const job of jobs) added.push(await plain.add('n', job));
    await completed(added.map((j) => j.id!));
    await marker(all);
    expect(inRoom!.received.filter((n) => ids.includes(n.id)).map((n) => n.id).sort()).toEqual([...ids].sort());
    expect(elsewhere!.received.filter((n) => ids.includes(n.id)).map((n) => n.id).sort()).toEqual([ids[1], ids[2]].sort());
  });

  it('fails a job that reuses an id with other content, keeping the reason, and sends nothing for it', async () => {
    const [tia] = users(1);
    const [onTia] = await clientsOn([serverA, { userId: tia }]);
    const id = `conflict-${randomUUID().slice(0, 8)}`;
    const first = await plain.add('n', { id, to: { userId: tia! }, type: 'c.first', title: 'one' });
    await completed([first.id!]);
    const second = await plain.add('n', { id, to: { userId: tia! }, type: 'c.first', title: 'two' }, { attempts: 5 });
    const failed = await eventually(async () => ((await second.getState()) === 'failed' ? plain.getJob(second.id!) : undefined), {
      what: 'the conflicting job failed',
    });
    expect(failed.failedReason).toMatch(/was delivered before with other content/);
    expect(failed.attemptsMade).toBe(1);
    await marker([onTia!]);
    expect(onTia!.received.filter((n) => n.id === id).map((n) => n.title)).toEqual(['one']);
    expect((await inbox.list(tia!, {})).items.map((i) => i.title)).toEqual(['one']);
  });
});

