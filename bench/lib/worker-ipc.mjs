// Child side of the bench's worker protocol: requests `{ id, type, args }` from the parent are
// answered `{ id, ok, result | error }`, each bounded by a deadline.
import { withDeadline } from './clock.mjs';

export function serveParent(handlers, deadlineMs) {
  process.on('message', async (msg) => {
    const handler = handlers[msg?.type];
    if (!handler) return;
    try {
      const result = await withDeadline(Promise.resolve(handler(msg.args ?? {})), deadlineMs, msg.type);
      process.send?.({ id: msg.id, ok: true, result });
    } catch (err) {
      process.send?.({ id: msg.id, ok: false, error: err?.message ?? String(err) });
    }
  });
  // The parent went away (crash, SIGKILL): do not linger.
  process.on('disconnect', () => process.exit(0));
}
