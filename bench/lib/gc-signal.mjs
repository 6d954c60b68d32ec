// Preloaded into server processes by the memory benches (`node --expose-gc --import <this>`):
// SIGWINCH (ignored by default, and not one of the signals the gateway shuts down on) runs a full
// garbage collection, so that the resident set read afterwards holds what is live rather than what
// the collector has not got to yet. With BENCH_HEAP_SNAPSHOT_DIR set, it also writes a heap
// snapshot there (for bench/tools/profile-handshake.mjs). After the GC it prints one line on stderr,
// `bench-memory {process.memoryUsage()}`, which pod-stats.mjs reads back.
import { writeHeapSnapshot } from 'node:v8';

let n = 0;
process.on('SIGWINCH', () => {
  globalThis.gc?.();
  globalThis.gc?.();
  process.stderr.write(`bench-memory ${JSON.stringify(process.memoryUsage())}\n`);
  const dir = process.env.BENCH_HEAP_SNAPSHOT_DIR;
  if (dir) writeHeapSnapshot(`${dir}/${process.pid}-${n++}.heapsnapshot`);
});
