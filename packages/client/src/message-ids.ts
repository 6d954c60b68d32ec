/**
 * Orders two message ids (`<ms>-<seq>`, ordered within a room) numerically, without the
 * precision limit of `Number`: negative when `a` comes first, 0 when equal, positive otherwise.
 */
export function compareMessageIds(a: string, b: string): number {
  const [am = '', as = ''] = a.split('-', 2);
  const [bm = '', bs = ''] = b.split('-', 2);
  return compareDigits(am, bm) || compareDigits(as, bs);
}

function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+(?=\d)/, '');
  const y = b.replace(/^0+(?=\d)/, '');
  if (x.length !== y.length) return x.length - y.length;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The later of two ids; `current` may be unknown yet. */
export function laterId(current: string | undefined, id: string): string {
  return current === undefined || compareMessageIds(id, current) > 0 ? id : current;
}
