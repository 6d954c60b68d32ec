// Parent side of the receiver workers: forks bench/lib/receivers.mjs processes and talks to them over IPC.
import { fileURLToPath } from 'node:url';
import { forkNode, stopChild } from './procs.mjs';
import { withDeadline } from './clock.mjs';
import { Histogram } from './histogram.mjs';

const WORKER = fileURLToPath(new URL('./receivers.mjs', import.meta.url));

class Worker {
  constructor(label) {
    this.label = label;
    this.child = forkNode(WORKER, { label, env: { ...process.env, NODE_ENV: 'production' } });
    this.pid = this.child.pid;
    this.nextId = 1;
    this.pending = new Map();
    this.child.on('message', (msg) => {
      const waiter = this.pending.get(msg?.id);
      if (!waiter) return;
      this.pending.delete(msg.id);
      if (msg.ok) waiter.resolve(msg.result);
      else waiter.reject(new Error(`${label}: ${msg.error}`));
    });
    this.child.once('exit', (code, signal) => {
      for (const waiter of this.pending.values()) {
        waiter.reject(new Error(`${label} exited (${signal ?? code}): ${this.child.output.trim().slice(-2000)}`));
      }
      this.pending.clear();
    });
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
}

export class ReceiverPool {
  /** @param {number} count number of worker processes */
  constructor(count, labelPrefix) {
    this.workers = Array.from({ length: count }, (_, i) => new Worker(`${labelPrefix}-receivers-${i + 1}`));
  }

  get pids() {
    return this.workers.map((w) => w.pid);
  }

  /** @param {Array<{url:string,userIds:string[]}>} assignments one per worker */
  async connect(assignments, { jwtSecret, room, batchSize, timeoutMs }) {
    const results = await Promise.all(
      assignments.map((a, i) =>
        this.workers[i].call('connect', { ...a, jwtSecret, room, batchSize, timeoutMs }, timeoutMs * (a.userIds.length / batchSize + 2)),
      ),
    );
    const failures = {};
    for (const r of results) for (const [k, n] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + n;
    return {
      joined: results.reduce((s, r) => s + r.joined, 0),
      failures,
      ms: Math.max(...results.map((r) => r.ms)),
    };
  }

  startPhase(args) {
    return Promise.all(this.workers.map((w) => w.call('step', args)));
  }

  async poll() {
    const polls = await Promise.all(this.workers.map((w) => w.call('poll')));
    return {
      deliveries: polls.reduce((s, p) => s + p.deliveries, 0),
      total: polls.reduce((s, p) => s + p.total, 0),
      receivers: polls.reduce((s, p) => s + p.receivers, 0),
    };
  }

  /** Merged statistics of the current phase, plus the per-worker reports. */
  async report() {
    const reports = await Promise.all(this.workers.map((w) => w.call('report')));
    const hist = new Histogram();
    const sum = (key) => reports.reduce((s, r) => s + r[key], 0);
    for (const r of reports) hist.merge(Histogram.fromJSON(r.hist));
    return {
      receivers: sum('receivers'),
      deliveries: sum('deliveries'),
      inWindow: sum('inWindow'),
      dups: sum('dups'),
      late: sum('late'),
      foreign: sum('foreign'),
      disconnects: sum('disconnects'),
      cpuMs: sum('cpuMs'),
      hist,
      perWorker: reports.map(({ hist, ...r }) => ({ ...r, histJSON: hist })),
    };
  }

  async close() {
    await Promise.allSettled(this.workers.map((w) => w.call('close', {}, 3000)));
    await Promise.all(this.workers.map((w) => stopChild(w.child, 2000)));
  }
}
