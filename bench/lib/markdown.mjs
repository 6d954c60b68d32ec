// Small formatting helpers for the markdown tables the scenarios return.
export function table(headers, rows) {
  const esc = (cell) => String(cell ?? '').replace(/\|/g, '\\|');
  const lines = [`| ${headers.map(esc).join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`];
  for (const row of rows) lines.push(`| ${row.map(esc).join(' | ')} |`);
  return lines.join('\n');
}

export const int = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
export const ms = (n) => (Number.isFinite(n) ? `${n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n)} ms` : '–');
export const pct = (n, digits = 3) => (Number.isFinite(n) ? `${(n * 100).toFixed(digits)} %` : '–');
export const ratio = (n) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '–');
