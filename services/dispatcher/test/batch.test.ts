import { Emitter } from '@socket.io/redis-emitter';
import { describe, expect, it } from 'vitest';
import type { Notification, ServerToClientEvents } from '@switchboard/protocol';
import { InboxWriteError, type InboxDelivery } from '@switchboard/store';
import { batchDeliveries, DELIVERY_BATCH_MAX, PublicationEncoder } from '../src/index.js';

const note = (id: string): Notification => ({ id, type: 'test.batch', ts: 1 });

/** An inbox that records each call and fails the entries whose notification id starts with 'bad'. */
function recordingInbox() {
  const calls: InboxDelivery[][] = [];
  return {
    calls,
    addMany: async (entries: readonly InboxDelivery[]) => {
      calls.push([...entries]);
      return entries.map((e) => (e.notification.id.startsWith('bad') ? new InboxWriteError(`WRONGTYPE ${e.notification.id}`) : undefined));
    },
  };
}

describe('batchDeliveries', () => {
  it('sends the deliveries asked for in one turn of the event loop in one call', async () => {
    const inbox = recordingInbox();
    const batch = batchDeliveries(inbox);
    await Promise.all(['a', 'b', 'c'].map((id) => batch({ userIds: [id], notification: note(id) })));
    expect(inbox.calls.map((c) => c.map((e) => e.notification.id))).toEqual([['a', 'b', 'c']]);
    // a later turn is a new call
    await batch({ userIds: ['d'], notification: note('d') });
    expect(inbox.calls).toHaveLength(2);
  });

  it('fails only the delivery whose write failed', async () => {
    const inbox = recordingInbox();
    const batch = batchDeliveries(inbox);
    const results = await Promise.allSettled(['a', 'bad-1', 'c'].map((id) => batch({ userIds: [id], notification: note(id) })));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const reason = (results[1] as PromiseRejectedResult).reason as Error;
    expect(reason).toBeInstanceOf(InboxWriteError);
    expect(reason.message).toBe('WRONGTYPE bad-1');
    expect(inbox.calls).toHaveLength(1);
  });

  it('fails every delivery of a call that Redis refused as a whole', async () => {
    const batch = batchDeliveries({ addMany: () => Promise.reject(new Error('Connection is closed.')) });
    const results = await Promise.allSettled([batch({ userIds: ['a'], notification: note('a') }), batch({ userIds: [], notification: note('b') })]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });

  it(`keeps a call to ${DELIVERY_BATCH_MAX} deliveries`, async () => {
    const inbox = recordingInbox();
    const batch = batchDeliveries(inbox);
    await Promise.all(Array.from({ length: DELIVERY_BATCH_MAX + 1 }, (_, i) => batch({ userIds: [`u${i}`], notification: note(`n${i}`) })));
    expect(inbox.calls.map((c) => c.length)).toEqual([DELIVERY_BATCH_MAX, 1]);
  });
});

describe('PublicationEncoder', () => {
  /** What the Socket.IO Redis emitter itself publishes, recorded from a stand-in client. */
  function published(emit: (e: Emitter<ServerToClientEvents>) => void) {
    const sent: Array<{ channel: string; message: Buffer }> = [];
    emit(new Emitter<ServerToClientEvents>({ publish: (channel: string, message: Buffer) => sent.push({ channel, message }) }, { key: 'sb#io' }));
    return sent;
  }

  it('captures exactly what the emitter publishes, for one room, many rooms and everyone', () => {
    const encoder = new PublicationEncoder('sb#io');
    const n = note('x');
    const cases: Array<(e: Emitter<ServerToClientEvents>) => void> = [
      (e) => e.to('user:a').emit('notification', n),
      (e) => e.to(['user:a', 'user:b']).emit('notification', n),
      (e) => e.emit('notification', n),
    ];
    for (const emit of cases) {
      const [expected] = published(emit);
      const got = encoder.encode(emit);
      expect(got.channel).toBe(expected!.channel);
      expect(got.message.equals(expected!.message)).toBe(true);
    }
    expect(encoder.encode(cases[0]!).channel).toBe('sb#io#/#user:a#');
  });

  it('refuses a callback that emits nothing', () => {
    const encoder = new PublicationEncoder('sb#io');
    expect(() => encoder.encode(() => {})).toThrow(/nothing was emitted/);
  });
});
