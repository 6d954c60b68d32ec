import { describe, expect, it } from 'vitest';
import { promqlSelectors } from './promql.js';

describe('promqlSelectors', () => {
  it('finds selectors and grouping labels, not functions, aggregations, operators or durations', () => {
    const parts = promqlSelectors(`
      histogram_quantile(0.99, sum by (le, event) (rate(switchboard_gateway_event_duration_seconds_bucket{event!="session:ping"}[5m]))) > 0.25
      and on (pod) sum without (reason) (increase(switchboard_x_total[10m] offset 1m)) > bool 1
      or absent(up{job="switchboard-gateway", instance=~"a|b"})`);
    expect(parts.selectors).toEqual([
      {
        text: 'switchboard_gateway_event_duration_seconds_bucket{event!="session:ping"}',
        metric: 'switchboard_gateway_event_duration_seconds_bucket',
        labels: ['event'],
      },
      { text: 'switchboard_x_total', metric: 'switchboard_x_total', labels: [] },
      { text: 'up{job="switchboard-gateway", instance=~"a|b"}', metric: 'up', labels: ['job', 'instance'] },
    ]);
    expect(parts.groupingLabels).toEqual(['le', 'event', 'pod']);
  });

  it('is not fooled by braces, commas or words inside label values', () => {
    const parts = promqlSelectors('sum(rate(m_total{result=~"(?i)error|sum(x)|{}", path="/a,b"}[1m])) / sum(rate(m_total[1m]))');
    expect(parts.selectors.map((s) => s.text)).toEqual(['m_total{result=~"(?i)error|sum(x)|{}", path="/a,b"}', 'm_total']);
    expect(parts.selectors[0]!.labels).toEqual(['result', 'path']);
  });

  it('refuses what it cannot read', () => {
    expect(() => promqlSelectors('{__name__="up"}')).toThrow(SyntaxError);
    expect(() => promqlSelectors('up{job="x}')).toThrow(SyntaxError);
  });
});
