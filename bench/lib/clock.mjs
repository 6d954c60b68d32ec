// One clock for every bench process: wall-clock milliseconds with sub-millisecond resolution.
// Publisher and receivers run on the same machine, so their readings are comparable.
export const now = () => performance.timeOrigin + performance.now();

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Rejects with `what timed out after N ms` unless `promise` settles first. */
export function withDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
