/** One cell of a table: numbers are printed as they are. */
export type Cell = string | number
export type Align = 'left' | 'right'

/**
 * A plain-text table, one string per line: the header then the rows, columns two spaces apart, each as
 * wide as its widest cell (header included), left-aligned unless `align` says right; trailing spaces are
 * trimmed so a short last column leaves no padding behind. Every table the CLI prints goes through here,
 * so `status`, `top`, `verify` and the swarm status line up the same way.
 */
export function formatTable(
  header: readonly string[],
  rows: ReadonlyArray<readonly Cell[]>,
  align: readonly Align[] = [],
): string[] {
  const text = rows.map((row) => row.map(String))
  const widths = header.map((name, index) => Math.max(name.length, ...text.map((row) => (row[index] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, index) =>
        align[index] === 'right' ? cell.padStart(widths[index] ?? 0) : cell.padEnd(widths[index] ?? 0),
      )
      .join('  ')
      .trimEnd()
  return [line(header), ...text.map(line)]
}
