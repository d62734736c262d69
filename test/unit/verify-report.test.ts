import {describe, expect, it} from 'vitest'

import {renderJson, renderTable, reportDocument, summaryLine, wrapLine} from '../../src/verify/report.js'
import {runChecks} from '../../src/verify/run.js'
import type {Check, CheckResult, VerifyContext, VerifyReport} from '../../src/verify/types.js'

const checks: CheckResult[] = [
  {
    id: 'containers',
    title: 'Containers running and healthy',
    ok: true,
    detail: '3/3 running and healthy',
    ms: 41,
    data: {containers: []},
  },
  {
    id: 'config',
    title: 'NGINX config test (nginx -t)',
    ok: false,
    detail: 'nginx -t exited with code 1:\n  | nginx: [emerg] unexpected end of file',
    ms: 80,
  },
  {
    id: 'tls',
    title: 'TLS certificate and protocols',
    ok: true,
    warn: true,
    detail: 'TLSv1.3; warning: certificate expires in 12 days',
    ms: 1530,
  },
]
const report: VerifyReport = {ok: false, project: 'demo', runId: 'abcd1234', durationMs: 12_345, checks}

/** Rows of the table: the first line of each check, split into its columns. */
function tableRows(text: string): Array<{id: string; result: string; time: string}> {
  const lines = text.split('\n')
  return lines
    .slice(1, lines.indexOf(''))
    .filter((line) => /^\S/.test(line))
    .map((line) => {
      const [id = '', result = ''] = line.split(/\s+/)
      const time = /(\d+(?:\.\d)? (?:ms|s))$/.exec(line)?.[1] ?? ''
      return {id, result, time}
    })
}

describe('verify report', () => {
  it('summarises passes (with warnings), failures and the run time', () => {
    expect(summaryLine(report)).toBe('2 passed (1 with warnings), 1 failed in 12.3 s')
    expect(summaryLine({...report, ok: true, checks: [checks[0]!], durationMs: 900})).toBe(
      '1 passed, 0 failed in 0.9 s',
    )
  })

  it('labels and counts skipped checks apart', () => {
    const skipped: CheckResult = {
      id: 'balance',
      title: 'Requests reach every replica',
      ok: true,
      skipped: true,
      detail: 'skipped: every service runs 1 replica',
      ms: 0,
    }
    const withSkip: VerifyReport = {...report, ok: true, checks: [checks[0]!, skipped], durationMs: 3900}
    expect(summaryLine(withSkip)).toBe('1 passed, 1 skipped, 0 failed in 3.9 s')
    expect(renderTable(withSkip).split('\n')[2]).toMatch(
      /^balance\s+skip\s+skipped: every service runs 1 replica\s+0 ms$/,
    )
    expect(JSON.parse(renderJson(withSkip)).checks[1]).toEqual({
      id: 'balance',
      title: 'Requests reach every replica',
      ok: true,
      skipped: true,
      detail: 'skipped: every service runs 1 replica',
      ms: 0,
    })
  })

  it('prints check | result | detail | time and the summary', () => {
    const table = renderTable(report)
    const lines = table.split('\n')
    expect(lines[0]).toMatch(/^check\s+result\s+detail\s+time$/)
    expect(lines[1]).toMatch(/^containers\s+pass\s+3\/3 running and healthy\s+41 ms$/)
    expect(lines[2]).toMatch(/^config\s+FAIL\s+nginx -t exited with code 1:\s+80 ms$/)
    // Extra detail lines stay in the detail column.
    expect(lines[3]).toBe(`${' '.repeat(lines[2]!.indexOf('nginx'))}  | nginx: [emerg] unexpected end of file`)
    expect(lines[4]).toMatch(/^tls\s+warn\s+TLSv1.3; warning: certificate expires in 12 days\s+1.5 s$/)
    expect(lines.at(-1)).toBe('2 passed (1 with warnings), 1 failed in 12.3 s')
  })

  it('wraps long details to the width and keeps every word', () => {
    const long = Array.from({length: 40}, (_, index) => `word${index}`).join(' ')
    const table = renderTable({...report, checks: [{...checks[0]!, detail: long}]}, {width: 80})
    for (const line of table.split('\n')) expect(line.length).toBeLessThanOrEqual(80)
    expect(
      table
        .split('\n')
        .slice(1, -2)
        .map((line) =>
          line
            .replace(/^containers\s+pass\s+/, '')
            .replace(/\s+41 ms$/, '')
            .trim(),
        )
        .join(' '),
    ).toBe(long)
    expect(wrapLine('a-very-long-token-without-spaces', 5)).toEqual(['a-very-long-token-without-spaces'])
    expect(wrapLine('  | nginx: [emerg] unexpected end of file', 24)).toEqual([
      '  | nginx: [emerg]',
      '  | unexpected end of',
      '  | file',
    ])
  })

  it('prints one JSON document that agrees with the table', () => {
    const json = JSON.parse(renderJson(report)) as ReturnType<typeof reportDocument>
    expect(Object.keys(json)).toEqual(['ok', 'project', 'runId', 'durationMs', 'summary', 'checks'])
    expect(json.ok).toBe(false)
    expect(json.durationMs).toBe(12_345)
    expect(json.checks.map((check) => Object.keys(check))).toEqual([
      ['id', 'title', 'ok', 'detail', 'ms', 'data'],
      ['id', 'title', 'ok', 'detail', 'ms'],
      ['id', 'title', 'ok', 'warn', 'detail', 'ms'],
    ])

    const rows = tableRows(renderTable(report))
    expect(rows.map((row) => row.id)).toEqual(json.checks.map((check) => check.id))
    expect(rows.map((row) => row.result)).toEqual(
      json.checks.map((check) => (!check.ok ? 'FAIL' : 'warn' in check ? 'warn' : 'pass')),
    )
    expect(renderTable(report).split('\n').at(-1)).toBe(json.summary)
  })
})

describe('running checks', () => {
  const context = {} as VerifyContext
  const check = (id: Check['id'], run: Check['run']): Check => ({id, title: id, run})

  it('turns a check that throws into a failure and runs the rest', async () => {
    const seen: string[] = []
    const results = await runChecks(
      [
        check('containers', async () => {
          throw new Error('Docker engine not running: no socket at unix:///var/run/docker.sock')
        }),
        check('config', async () => ({ok: true, detail: 'fine'})),
      ],
      context,
      (result) => seen.push(result.id),
    )
    expect(results.map(({id, ok, detail}) => ({id, ok, detail}))).toEqual([
      {id: 'containers', ok: false, detail: 'Docker engine not running: no socket at unix:///var/run/docker.sock'},
      {id: 'config', ok: true, detail: 'fine'},
    ])
    expect(seen).toEqual(['containers', 'config'])
    expect(results.every((result) => typeof result.ms === 'number')).toBe(true)
  })
})
