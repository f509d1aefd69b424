/**
 * A strict reader of Prometheus's text exposition format (version 0.0.4),
 * for tests. Hand-written because the npm parser (parse-prometheus-text-format
 * 1.1.1) accepts lines such as `a{b="c"} x` (a value that is no number); this
 * one throws on anything Prometheus's own parser would refuse, and checks
 * what a scrape must hold together: one TYPE per family, before its
 * samples; no series twice; histogram buckets cumulative with `+Inf` equal
 * to `_count`; counters not negative.
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  readonly samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
// Go's strconv.ParseFloat, as Prometheus reads values: decimal or exponent forms, Inf and NaN in any case.
const VALUE = /^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[Ii][Nn][Ff]|[Nn][Aa][Nn])$/;

function fail(n: number, line: string, why: string): never {
  throw new Error(`Prometheus text, line ${n + 1}: ${why}: ${line}`);
}

/** Labels from `{a="x",b="y"}` (escapes \\, \", \n), starting after the brace; returns them and where the text goes on. */
function readLabels(line: string, at: number, n: number): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = at;
  for (;;) {
    if (line[i] === '}') return { labels, end: i + 1 };
    const eq = line.indexOf('=', i);
    if (eq < 0) fail(n, line, 'a label without a value');
    const name = line.slice(i, eq);
    if (!LABEL.test(name)) fail(n, line, `bad label name "${name}"`);
    if (line[eq + 1] !== '"') fail(n, line, 'a label value must be quoted');
    let value = '';
    let j = eq + 2;
    for (; j < line.length && line[j] !== '"'; j++) {
      if (line[j] === '\\') {
        const e = line[++j];
        if (e === 'n') value += '\n';
        else if (e === '\\' || e === '"') value += e;
        else fail(n, line, `bad escape \\${e ?? ''}`);
      } else value += line[j];
    }
    if (j >= line.length) fail(n, line, 'unterminated label value');
    if (name in labels) fail(n, line, `label ${name} twice`);
    labels[name] = value;
    i = j + 1;
    if (line[i] === ',') i++;
    else if (line[i] !== '}') fail(n, line, 'expected , or } after a label');
  }
}

/** The family a sample belongs to: itself, or a histogram's or summary's _bucket/_sum/_count. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const own = families.get(name);
  if (own !== undefined) return own;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f !== undefined && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const lines = text.split('\n');
  if (lines.at(-1) !== '') throw new Error('Prometheus text must end with a line feed');
  lines.forEach((line, n) => {
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
      if (m === null) return; // other comments are allowed
      const [, kind, name, rest] = m as unknown as [string, string, string, string | undefined];
      if (!NAME.test(name)) fail(n, line, `bad metric name "${name}"`);
      if (kind === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest ?? '')) fail(n, line, `unknown type "${rest ?? ''}"`);
        if (families.has(name)) fail(n, line, `TYPE for ${name} twice, or after its samples`);
        families.set(name, { name, type: rest as Family['type'], samples: [] });
      }
      return;
    }
    const nameEnd = line.search(/[{ ]/);
    if (nameEnd <= 0) fail(n, line, 'no metric name');
    const name = line.slice(0, nameEnd);
    if (!NAME.test(name)) fail(n, line, `bad metric name "${name}"`);
    let labels: Record<string, string> = {};
    let rest = line.slice(nameEnd);
    if (rest.startsWith('{')) {
      const r = readLabels(line, nameEnd + 1, n);
      labels = r.labels;
      rest = line.slice(r.end);
    }
    const parts = rest.split(' ');
    if (parts[0] !== '' || parts.length < 2 || parts.length > 3) fail(n, line, 'expected one space, a value and an optional timestamp');
    const raw = parts[1] as string;
    if (!VALUE.test(raw)) fail(n, line, `"${raw}" is not a number`);
    if (parts[2] !== undefined && !/^-?\d+$/.test(parts[2])) fail(n, line, 'bad timestamp');
    const value = /nan/i.test(raw) ? NaN : /inf/i.test(raw) ? (raw.startsWith('-') ? -Infinity : Infinity) : Number(raw);
    const key = `${name}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
    if (seen.has(key)) fail(n, line, 'the same series twice');
    seen.add(key);
    let family = familyOf(name, families);
    if (family === undefined) {
      family = { name, type: 'untyped', samples: [] };
      families.set(name, family);
    }
    if (family.type === 'counter' && !(value >= 0)) fail(n, line, 'a counter below zero');
    family.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: Family): void {
  const bySeries = new Map<string, { buckets: Array<[number, number]>; count?: number }>();
  const seriesKey = (labels: Record<string, string>) => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
  for (const s of f.samples) {
    const key = seriesKey(s.labels);
    const entry = bySeries.get(key) ?? { buckets: [] };
    bySeries.set(key, entry);
    if (s.name === `${f.name}_bucket`) {
      const le = s.labels.le;
      if (le === undefined) throw new Error(`${f.name}: a bucket without le`);
      entry.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    } else if (s.name === `${f.name}_count`) entry.count = s.value;
  }
  for (const [key, { buckets, count }] of bySeries) {
    for (let i = 1; i < buckets.length; i++) {
      const [le0, c0] = buckets[i - 1] as [number, number];
      const [le1, c1] = buckets[i] as [number, number];
      if (!(le1 > le0) || c1 < c0) throw new Error(`${f.name}${key}: buckets not increasing and cumulative`);
    }
    const last = buckets.at(-1);
    if (last === undefined || last[0] !== Infinity || last[1] !== count) throw new Error(`${f.name}${key}: the +Inf bucket must equal _count`);
  }
}

/** One sample's value: the family's sample named `name` (default: the family) with exactly these labels; undefined when absent. */
export function valueOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}, sample = name): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  return families.get(name)?.samples.find((s) => s.name === sample && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}
