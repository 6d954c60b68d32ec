// The bench's worker protocol: requests `{ id, type, args }` from the parent are answered
// `{ id, ok, result | error }`, each bounded by a deadline. `serveParent` is the child side,
// `WorkerProcess` the parent side.
import { withDeadline } from './clock.mjs';
import { forkNode, stopChild } from './procs.mjs';

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

/** Parent side: a forked worker script, called over IPC. */
export class WorkerProcess {
  /** @param {string} script @param {{ label: string, env: Record<string,string|undefined>, cwd?: string }} o */
  constructor(script, { label, env, cwd }) {
    this.label = label;
    this.child = forkNode(script, { label, cwd, env });
    this.pid = this.child.pid;
    this.nextId = 1;
    this.pending = new Map();
    this.child.on('message', (msg) => {
      if (msg?.type === 'ready') this.onReady?.();
      const waiter = this.pending.get(msg?.id);
      if (!waiter) return;
      this.pending.delete(msg.id);
      if (msg.ok) waiter.resolve(msg.result);
      else waiter.reject(new Error(`${label}: ${msg.error}`));
    });
    this.child.once('exit', (code, signal) => {
      const err = new Error(`${label} exited (${signal ?? code}): ${this.child.output.trim().slice(-2000)}`);
      for (const waiter of this.pending.values()) waiter.reject(err);
      this.pending.clear();
      this.onExit?.(err);
    });
  }

  /** Resolves once the process said `{ type: 'ready' }`. */
  ready(timeoutMs) {
    const ready = new Promise((resolve, reject) => {
      this.onReady = resolve;
      this.onExit = reject;
    });
    return withDeadline(ready, timeoutMs, `${this.label} start`);
  }

  call(type, args = {}, timeoutMs = 10_000) {
    const id = this.nextId++;
    const reply = new Promise((resolve, reject) => {
      if (!this.child.connected) throw new Error(`${this.label} is gone (${type})`);
      this.pending.set(id, { resolve, reject });
      this.child.send({ id, type, args });
    });
    return withDeadline(reply, timeoutMs, `${this.label} ${type}`).finally(() => this.pending.delete(id));
  }

  /** Asks the worker to close, then makes sure the process is gone. */
  async close(graceMs = 3000) {
    if (this.child.connected) {
      try {
        this.child.send({ type: 'close', id: 0 });
      } catch {
        /* gone */
      }
    }
    await stopChild(this.child, graceMs);
  }
}
