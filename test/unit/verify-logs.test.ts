import {mkdtemp, mkdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {describe, expect, it} from 'vitest'

import {parseAccessLog, severeSince} from '../../src/verify/checks/logs.js'
import {parseErrorLog, readTail, upstreamErrorReason} from '../../src/verify/logfiles.js'

const access = [
  '{"time":"2025-01-31T10:00:00+00:00","request_id":"verify-ab12-1","remote_addr":"172.18.0.1","method":"GET","uri":"/api/","status":200,"bytes":310,"request_time":0.004,"upstream_addr":"172.18.0.3:8000","upstream_status":"200","upstream_response_time":"0.004","host":"api.localhost","user_agent":"create-gateway-verify","route":"/","service":"web"}',
  '{"time":"2025-01-31T10:00:00+00:00","request_id":"verify-ab12-2","method":"GET","uri":"/api/","status":503,"upstream_addr":"","route":"/","service":"web"}',
  '',
  'not json at all',
  '{"time":"2025-01-31T10:00:01+00:00","request_id":"verify-ab12-3","uri":"/payment/","status":502,"upstream_addr":"10.0.0.9:80, 10.0.0.10:80"}',
  '[1, 2]',
  '{"time":"2025-01-31T10:00:01+00:00","request_id":"verify-ab12-4","uri":"/cut-off',
].join('\n')

const errorLog = [
  '2025/01/31 09:59:58 [notice] 1#1: signal process started',
  '2025/01/31 09:59:59 [emerg] 1#1: unexpected end of file, expecting "}" in /etc/nginx/conf.d/broken.conf:3',
  '2025/01/31 10:00:00 [error] 29#29: *5 limiting requests, excess: 20.630 by zone "global", client: 172.18.0.1, server: api.localhost, request: "GET /api/ HTTP/1.1", host: "api.localhost:8443"',
  '2025/01/31 10:00:01 [error] 29#29: *9 connect() failed (111: Connection refused) while connecting to upstream, client: 172.18.0.1, server: api.localhost, request: "GET /payment/ HTTP/1.1", upstream: "http://127.0.0.1:9/", host: "api.localhost:8443"',
  '2025/01/31 10:00:02 [error] 29#29: *12 payment.invalid could not be resolved (3: Host not found), client: 172.18.0.1, server: api.localhost, request: "GET /other/ HTTP/1.1", host: "api.localhost:8443"',
  '2025/01/31 10:00:03 [crit] 30#30: *13 SSL_do_handshake() failed',
  'a line that is not from nginx',
].join('\n')

describe('access log', () => {
  it('parses JSON lines and counts what is not a JSON object', () => {
    const {records, malformed} = parseAccessLog(access)
    expect(records.map((record) => record.request_id)).toEqual(['verify-ab12-1', 'verify-ab12-2', 'verify-ab12-3'])
    expect(records[0]).toMatchObject({status: 200, upstream_addr: '172.18.0.3:8000', uri: '/api/'})
    expect(malformed).toBe(3)
  })

  it('reads the tail of a big file from a line start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cg-verify-logs-'))
    try {
      await mkdir(join(dir, 'logs'))
      const lines = Array.from({length: 1000}, (_, index) => JSON.stringify({request_id: `id-${index}`, status: 200}))
      await writeFile(join(dir, 'logs', 'access.log'), `${lines.join('\n')}\n`)
      const {records, malformed} = parseAccessLog(await readTail(dir, 'logs/access.log', 4096))
      expect(malformed).toBe(0)
      expect(records.at(-1)?.request_id).toBe('id-999')
      expect(records.length).toBeLessThan(1000)
      expect(await readTail(dir, 'logs/missing.log')).toBe('')
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})

describe('error log', () => {
  it('parses time, level and message', () => {
    const lines = parseErrorLog(errorLog)
    expect(lines).toHaveLength(6)
    expect(lines[1]).toMatchObject({
      level: 'emerg',
      message: 'unexpected end of file, expecting "}" in /etc/nginx/conf.d/broken.conf:3',
    })
    expect(lines[1]!.time.toISOString()).toBe('2025-01-31T09:59:59.000Z')
  })

  it('finds emerg/alert/crit lines since the run began, to the second', () => {
    const lines = parseErrorLog(errorLog)
    expect(severeSince(lines, new Date('2025-01-31T09:59:59.700Z')).map((line) => line.level)).toEqual([
      'emerg',
      'crit',
    ])
    expect(severeSince(lines, new Date('2025-01-31T10:00:00.100Z')).map((line) => line.level)).toEqual(['crit'])
    expect(severeSince(lines, new Date('2025-01-31T10:00:04Z'))).toEqual([])
  })

  it('explains an upstream failure from the newest line about that request', () => {
    expect(upstreamErrorReason(errorLog, '/payment/')).toBe(
      'connect() failed (111: Connection refused) while connecting to upstream (http://127.0.0.1:9/)',
    )
    expect(upstreamErrorReason(errorLog, '/other/')).toBe('payment.invalid could not be resolved (3: Host not found)')
    expect(upstreamErrorReason(errorLog, '/nothing/')).toBeUndefined()
  })
})
