/** A number for a fixed-width table: `–` when not finite, else fixed or exponential notation. */
export function tableCell(value: number, digits: number, exponent = false): string {
  return !Number.isFinite(value) ? '–' : exponent ? value.toExponential(2) : value.toFixed(digits);
}

/** A fixed-width text table: the first column left-aligned, the others right-aligned, a rule under the header. */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]!.length)),
  );
  const format = (row: readonly string[]) =>
    row
      .map((text, column) => (column === 0 ? text.padEnd(widths[column]!) : text.padStart(widths[column]!)))
      .join('  ');
  return [format(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(format)].join(
    '\n',
  );
}
