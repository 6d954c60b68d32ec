/**
 * Just enough of PromQL's lexer to find what an expression reads: its vector selectors
 * (`metric{label="value"}`) and the labels it groups by. Prometheus 2.42, which the tests run,
 * has no parse API.
 */

export interface Selector {
  /** As written: `up{job="switchboard-gateway"}`. */
  text: string;
  metric: string;
  /** Label names the matchers use. */
  labels: string[];
}

export interface PromqlParts {
  selectors: Selector[];
  /** Labels of `by (…)` and `on (…)` clauses (`le` of histograms included). */
  groupingLabels: string[];
}

const AGGREGATIONS = new Set([
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile',
]);
const OPERATORS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2']);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const IDENT_START = /[A-Za-z_:]/;
const IDENT = /[A-Za-z0-9_:]/;

/** The index just past a quoted string starting at `i`. */
function skipString(expr: string, i: number): number {
  const quote = expr[i];
  let j = i + 1;
  while (j < expr.length && expr[j] !== quote) j += expr[j] === '\\' ? 2 : 1;
  if (j >= expr.length) throw new SyntaxError(`unterminated string in ${expr}`);
  return j + 1;
}

/** The index just past the bracket closing the one at `i` (strings inside are skipped). */
function skipBalanced(expr: string, i: number, open: string, close: string): number {
  let depth = 0;
  for (let j = i; j < expr.length; j++) {
    const c = expr[j]!;
    if (c === '"' || c === "'" || c === '`') {
      j = skipString(expr, j) - 1;
    } else if (c === open) {
      depth++;
    } else if (c === close && --depth === 0) {
      return j + 1;
    }
  }
  throw new SyntaxError(`unbalanced "${open}" in ${expr}`);
}

const skipSpace = (expr: string, i: number) => {
  while (i < expr.length && /\s/.test(expr[i]!)) i++;
  return i;
};

function matcherLabels(braces: string): string[] {
  return [...braces.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*["'`]/g)].map((m) => m[1]!);
}

export function promqlSelectors(expr: string): PromqlParts {
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (c === '"' || c === "'" || c === '`') {
      i = skipString(expr, i);
    } else if (c === '[') {
      i = skipBalanced(expr, i, '[', ']'); // a range or subquery duration
    } else if (c === '{') {
      throw new SyntaxError(`a selector without a metric name is not supported here: ${expr}`);
    } else if (/[0-9.]/.test(c)) {
      while (i < expr.length && /[0-9A-Za-z.]/.test(expr[i]!)) i++; // a number or a duration
    } else if (IDENT_START.test(c)) {
      let j = i;
      while (j < expr.length && IDENT.test(expr[j]!)) j++;
      const word = expr.slice(i, j);
      const next = skipSpace(expr, j);
      if (GROUPING.has(word)) {
        if (expr[next] === '(') {
          const end = skipBalanced(expr, next, '(', ')');
          if (word === 'by' || word === 'on') {
            groupingLabels.push(...expr.slice(next + 1, end - 1).split(',').map((l) => l.trim()).filter(Boolean));
          }
          i = end;
        } else {
          i = next;
        }
      } else if (AGGREGATIONS.has(word) || OPERATORS.has(word) || expr[next] === '(') {
        i = j; // an aggregation, an operator or a function
      } else {
        let end = j;
        if (expr[next] === '{') end = skipBalanced(expr, next, '{', '}');
        const text = expr.slice(i, end);
        selectors.push({ text, metric: word, labels: matcherLabels(expr.slice(j, end)) });
        i = end;
      }
    } else {
      i++;
    }
  }
  return { selectors, groupingLabels: [...new Set(groupingLabels)] };
}
