import {formatTable} from '../util/table.js'
import type {CheckResult, VerifyReport} from './types.js'

/**
 * The report, in two forms built from the same VerifyReport, so --json and the table cannot disagree.
 */

export function resultLabel(result: CheckResult): 'pass' | 'warn' | 'skip' | 'FAIL' {
  if (!result.ok) return 'FAIL'
  if (result.skipped) return 'skip'
  return result.warn ? 'warn' : 'pass'
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`
}

export function summaryLine(report: VerifyReport): string {
  const passed = report.checks.filter((check) => check.ok && !check.skipped).length
  const skipped = report.checks.filter((check) => check.ok && check.skipped).length
  const failed = report.checks.filter((check) => !check.ok).length
  const warned = report.checks.filter((check) => check.ok && check.warn).length
  return `${passed} passed${warned > 0 ? ` (${warned} with warnings)` : ''}${skipped > 0 ? `, ${skipped} skipped` : ''}, ${failed} failed in ${(report.durationMs / 1000).toFixed(1)} s`
}

/**
 * Word-wrap one line to `width` columns; a word longer than the width gets a line of its own. A line
 * quoting output (`  | ...`) keeps its prefix on every continuation, so quoted lines stay recognisable.
 */
export function wrapLine(text: string, width: number): string[] {
  if (text.length <= width) return [text]
  const prefix = /^\s*\|\s/.exec(text)?.[0] ?? ''
  const lines: string[] = []
  let current = ''
  for (const word of text.slice(prefix.length).split(' ')) {
    if (current === '') current = word
    else if (prefix.length + current.length + 1 + word.length <= width) current += ` ${word}`
    else {
      lines.push(prefix + current)
      current = word
    }
  }

  if (current !== '') lines.push(prefix + current)
  return lines
}

export const DEFAULT_TABLE_WIDTH = 120

/**
 * check | result | detail | time, then the summary. Details wrap to fit `width` (the terminal's), and
 * their continuation lines stay in the detail column.
 */
export function renderTable(report: VerifyReport, options: {width?: number} = {}): string {
  const header = ['check', 'result', 'detail', 'time'] as const
  const idWidth = Math.max(header[0].length, ...report.checks.map((check) => check.id.length))
  const resultWidth = Math.max(header[1].length, ...report.checks.map((check) => resultLabel(check).length))
  const timeWidth = Math.max(header[3].length, ...report.checks.map((check) => formatMs(check.ms).length))
  const room = Math.max(30, (options.width ?? DEFAULT_TABLE_WIDTH) - idWidth - resultWidth - timeWidth - 6)
  const rows = report.checks.map((check) => ({
    id: check.id,
    result: resultLabel(check),
    lines: check.detail.split('\n').flatMap((line) => wrapLine(line, room)),
    time: formatMs(check.ms),
  }))
  const lines = rows.flatMap((row) => {
    const [first = '', ...rest] = row.lines
    return [[row.id, row.result, first, row.time], ...rest.map((extra) => ['', '', extra, ''])]
  })
  const out = formatTable(header, lines, ['left', 'left', 'left', 'right'])
  out.push('', summaryLine(report))
  return out.join('\n')
}

/** The --json document: stable key order, one object per check in run order. */
export function reportDocument(report: VerifyReport) {
  return {
    ok: report.ok,
    project: report.project,
    runId: report.runId,
    durationMs: report.durationMs,
    summary: summaryLine(report),
    checks: report.checks.map((check) => ({
      id: check.id,
      title: check.title,
      ok: check.ok,
      ...(check.warn ? {warn: true} : {}),
      ...(check.skipped ? {skipped: true} : {}),
      detail: check.detail,
      ms: check.ms,
      ...(check.data ? {data: check.data} : {}),
    })),
  }
}

export function renderJson(report: VerifyReport): string {
  return JSON.stringify(reportDocument(report), null, 2)
}
