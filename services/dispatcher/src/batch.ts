import DataLoader from 'dataloader';
import type { InboxDelivery, InboxStore } from '@switchboard/store';

/** Deliveries per script call: with at most `BATCHED_AUDIENCE_MAX` users each, a call stays short. */
export const DELIVERY_BATCH_MAX = 32;

/**
 * Deliveries asked for in the same turn of the event loop (jobs whose data arrived together) go to
 * Redis in one script call, up to `DELIVERY_BATCH_MAX`: one command, one reply and one write instead
 * of one each per job. Each delivery still succeeds or fails on its own.
 */
export function batchDeliveries(inbox: Pick<InboxStore, 'addMany'>): (delivery: InboxDelivery) => Promise<void> {
  const loader = new DataLoader<InboxDelivery, void>((entries) => inbox.addMany(entries), {
    cache: false,
    maxBatchSize: DELIVERY_BATCH_MAX,
    batchScheduleFn: (flush) => setImmediate(flush),
  });
  return (delivery) => loader.load(delivery);
}
