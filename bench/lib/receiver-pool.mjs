// Parent side of the receiver workers: forks bench/lib/receivers.mjs processes and talks to them over IPC.
import { fileURLToPath } from 'node:url';
import { stopChild } from './procs.mjs';
import { Histogram } from './histogram.mjs';
import { WorkerProcess } from './worker-ipc.mjs';

const WORKER = fileURLToPath(new URL('./receivers.mjs', import.meta.url));

export class ReceiverPool {
  /** @param {number} count number of worker processes */
  constructor(count, labelPrefix) {
    this.workers = Array.from(
      { length: count },
      (_, i) => new WorkerProcess(WORKER, { label: `${labelPrefix}-receivers-${i + 1}`, env: { ...process.env, NODE_ENV: 'production' } }),
    );
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
