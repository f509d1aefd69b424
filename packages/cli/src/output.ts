/** Everything the CLI writes: logs and progress on stderr, results on stdout. */

export interface Output {
  readonly json: boolean;
  readonly verbose: boolean;
  /** A log line on stderr. */
  log(message: string): void;
  /** A log line shown only with --verbose. */
  debug(message: string): void;
  /** Progress: a bar on a terminal, JSON lines on stderr otherwise. */
  progress(fields: ProgressFields): void;
  /** End the progress line (a terminal bar keeps its last state). */
  endProgress(): void;
}

export interface ProgressFields {
  readonly label: string;
  readonly done: number;
  readonly total: number;
  readonly [key: string]: string | number | undefined;
}

export function createOutput(options: { json: boolean; verbose: boolean; stderr?: NodeJS.WriteStream }): Output {
  const stderr = options.stderr ?? process.stderr;
  const tty = stderr.isTTY === true;
  let barShown = false;
  let lastJsonLine = 0;
  let lastBar = 0;
  const clearBar = () => {
    if (barShown) {
      stderr.write('\r\x1b[2K');
      barShown = false;
    }
  };
  return {
    json: options.json,
    verbose: options.verbose,
    log(message) {
      clearBar();
      stderr.write(`${message}\n`);
    },
    debug(message) {
      if (options.verbose) {
        clearBar();
        stderr.write(`${message}\n`);
      }
    },
    progress(all) {
      // Numbers not known yet (NaN) are left out rather than shown as null.
      const fields = Object.fromEntries(Object.entries(all).filter(([, v]) => typeof v !== 'number' || Number.isFinite(v))) as ProgressFields;
      const now = Date.now();
      const final = fields.done >= fields.total;
      if (tty) {
        if (!final && now - lastBar < 100) return;
        lastBar = now;
        const width = 24;
        const filled = Math.round((Math.min(fields.done, fields.total) / Math.max(1, fields.total)) * width);
        const extras = Object.entries(fields)
          .filter(([k, v]) => !['label', 'done', 'total'].includes(k) && v !== undefined)
          .map(([k, v]) => `${k} ${typeof v === 'number' ? formatNumber(v) : v}`)
          .join('  ');
        stderr.write(`\r\x1b[2K${fields.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${fields.done}/${fields.total}  ${extras}`);
        barShown = true;
      } else {
        // One JSON line per second at most, plus the last one.
        if (!final && now - lastJsonLine < 1000) return;
        lastJsonLine = now;
        stderr.write(`${JSON.stringify({ progress: { ...fields, label: fields.label.trim() } })}\n`);
      }
    },
    endProgress() {
      if (barShown) {
        stderr.write('\n');
        barShown = false;
      }
    },
  };
}

export function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}

export function percent(fraction: number, digits = 2): string {
  return `${(fraction * 100).toFixed(digits)}%`;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(2)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

/** A plain text table with aligned columns. */
export function table(rows: ReadonlyArray<ReadonlyArray<string | number>>, header?: ReadonlyArray<string>): string {
  const all = (header !== undefined ? [header, ...rows] : rows).map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths: number[] = [];
  for (const r of all) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  const out = all.map(line);
  if (header !== undefined) out.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return out.join('\n');
}
