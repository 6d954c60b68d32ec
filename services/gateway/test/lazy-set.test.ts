import { describe, expect, it } from 'vitest';
import { LazySet } from '../src/lazy-set.js';

describe('LazySet', () => {
  it('behaves as a set, empty before its first add and after its last delete', () => {
    const s = new LazySet<string>();
    expect([s.size, s.has('a'), s.delete('a'), [...s]]).toEqual([0, false, false, []]);
    s.add('a').add('b').add('a');
    expect([s.size, s.has('a'), [...s]]).toEqual([2, true, ['a', 'b']]);
    expect(s.delete('a')).toBe(true);
    expect(s.delete('b')).toBe(true);
    expect([s.size, s.has('b'), [...s]]).toEqual([0, false, []]);
    s.add('c').add('d');
    s.clear();
    expect([s.size, s.has('c'), [...s]]).toEqual([0, false, []]);
  });
});
