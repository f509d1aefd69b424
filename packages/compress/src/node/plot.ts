/** A small SVG line chart: validation accuracy against sparsity while pruning. */
import type { SparsityPoint } from './finetune.js';

export function accuracySparsitySvg(points: readonly SparsityPoint[], title: string, metric = 'accuracy'): string {
  const W = 640;
  const H = 400;
  const m = { left: 64, right: 24, top: 48, bottom: 56 };
  const accs = points.map((p) => p.validationScore);
  const lo = Math.max(0, Math.floor((Math.min(...accs, 1) - 0.02) * 50) / 50);
  const hi = 1;
  const x = (s: number) => m.left + s * (W - m.left - m.right);
  const y = (a: number) => H - m.bottom - ((a - lo) / (hi - lo)) * (H - m.top - m.bottom);
  const sorted = [...points].sort((a, b) => a.step - b.step);
  const path = sorted.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p.sparsity).toFixed(1)},${y(p.validationScore).toFixed(1)}`).join(' ');
  const ticksX = [0, 0.2, 0.4, 0.6, 0.8, 1].map((s) => `<line x1="${x(s)}" y1="${H - m.bottom}" x2="${x(s)}" y2="${H - m.bottom + 5}" stroke="#333"/><text x="${x(s)}" y="${H - m.bottom + 20}" text-anchor="middle">${Math.round(s * 100)}%</text>`);
  const steps = 5;
  const ticksY = Array.from({ length: steps + 1 }, (_, i) => lo + ((hi - lo) * i) / steps).map(
    (a) => `<line x1="${m.left - 5}" y1="${y(a)}" x2="${W - m.right}" y2="${y(a)}" stroke="#ddd"/><text x="${m.left - 8}" y="${y(a) + 4}" text-anchor="end">${(a * 100).toFixed(1)}%</text>`,
  );
  const dots = sorted.map((p) => `<circle cx="${x(p.sparsity).toFixed(1)}" cy="${y(p.validationScore).toFixed(1)}" r="3.5" fill="#1f6feb"><title>sparsity ${(p.sparsity * 100).toFixed(1)}%, ${metric} ${(p.validationScore * 100).toFixed(2)}% (step ${p.step})</title></circle>`);
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>
<text x="${W / 2}" y="36" text-anchor="middle" fill="#555">measured right after each mask update, in step order; the last point after fine-tuning at the final sparsity</text>
${ticksY.join('\n')}
<line x1="${m.left}" y1="${H - m.bottom}" x2="${W - m.right}" y2="${H - m.bottom}" stroke="#333"/>
<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${H - m.bottom}" stroke="#333"/>
${ticksX.join('\n')}
<text x="${(W + m.left) / 2}" y="${H - 16}" text-anchor="middle">sparsity (fraction of weights pruned)</text>
<text transform="translate(18 ${(H - m.bottom + m.top) / 2}) rotate(-90)" text-anchor="middle">validation ${metric}</text>
<path d="${path}" fill="none" stroke="#1f6feb" stroke-width="2"/>
${dots.join('\n')}
</svg>
`;
}
