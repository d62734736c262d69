import {describe, expect, it} from 'vitest'

import type {LogLine} from '../../src/docker/gateway-log.js'
import {LABELS} from '../../src/docker/spec.js'
import {logsCheck, parseAccessLog, severeSince} from '../../src/verify/checks/logs.js'
import type {VerifyEngine} from '../../src/verify/engine.js'
import type {GatewayClient} from '../../src/verify/http.js'
import {parseErrorLog, upstreamErrorReason} from '../../src/verify/logfiles.js'
import {containerLogSource, readGatewayLogs, type ContainerLogReader} from '../../src/verify/log-source.js'
import type {VerifyContext} from '../../src/verify/types.js'
import {fakeClock, runningContainer} from '../helpers/fake-engine.js'
import {testManifest} from '../helpers/stack-fixture.js'

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

  it("splits the gateway's log: stdout is the access log, stderr the error log; the running gateway's", async () => {
    const old = runningContainer({name: 'demo-gateway-old', running: false, labels: {[LABELS.service]: 'gateway'}})
    const gateway = runningContainer({name: 'demo-gateway-1', labels: {[LABELS.service]: 'gateway'}})
    const asked: Array<[string, number]> = []
    const engine: ContainerLogReader = {
      containers: async () => [old, runningContainer({name: 'demo-web-1'}), gateway],
      logs: async (container, tail) => {
        asked.push([container, tail])
        return [
          {stream: 'stdout', time: '2030-01-01T10:00:00Z', text: '{"request_id":"a"}'},
          {stream: 'stderr', time: '2030-01-01T10:00:01Z', text: '2030/01/01 10:00:01 [warn] 1#1: w'},
          {stream: 'stdout', time: '2030-01-01T10:00:02Z', text: '{"request_id":"b"}'},
        ]
      },
    }
    expect(await readGatewayLogs(engine, 500)).toEqual({
      access: '{"request_id":"a"}\n{"request_id":"b"}',
      error: '2030/01/01 10:00:01 [warn] 1#1: w',
    })
    expect(asked).toEqual([['demo-gateway-1-id', 500]])
    expect(await readGatewayLogs({...engine, containers: async () => []}, 500)).toEqual({access: '', error: ''})
  })
})

describe('the logs check', () => {
  /** A gateway that logs each request verify sends to its stdout, and `extra` lines to its stderr. */
  function setup(options: {extra?: string[]; logRequests?: boolean} = {}) {
    const lines: LogLine[] = (options.extra ?? []).map((text) => ({stream: 'stderr', time: '', text}))
    const answered: string[] = []
    const http = {
      runId: 'ab12',
      answered,
      loadTestIds: [],
      loadTestAnswered: 0,
      async send() {
        const id = `verify-ab12-${answered.length + 1}`
        answered.push(id)
        if (options.logRequests !== false)
          lines.push({stream: 'stdout', time: '', text: JSON.stringify({request_id: id, status: 200, uri: '/'})})
      },
    } as unknown as GatewayClient
    const containers = async () => [runningContainer({name: 'demo-gateway-1', labels: {[LABELS.service]: 'gateway'}})]
    const engine: VerifyEngine = {
      containers,
      exec: async () => ({exitCode: 0, stdout: '', stderr: ''}),
      gatewayLog: containerLogSource({containers, logs: async () => [...lines]}),
    }
    const context = {
      dir: '/nonexistent',
      manifest: testManifest(),
      http,
      engine,
      clock: fakeClock(Date.parse('2025-01-31T10:00:00Z')),
      startedAt: new Date('2025-01-31T10:00:00Z'),
    } as unknown as VerifyContext
    return context
  }

  it("passes when this run's request ids are on the gateway's stdout and stderr has nothing severe", async () => {
    const outcome = await logsCheck.run(setup({extra: ['2025/01/31 10:00:01 [warn] 1#1: a warning']}))
    expect(outcome.ok).toBe(true)
    expect(outcome.detail).toContain('1 request ids of this run in the access log (gateway stdout)')
  })

  it('fails when the ids are missing or the error log has an emerg since the run began', async () => {
    const missing = await logsCheck.run(setup({logRequests: false}))
    expect(missing.ok).toBe(false)
    expect(missing.detail).toContain('the access log (gateway stdout) is empty')
    const severe = await logsCheck.run(setup({extra: ['2025/01/31 10:00:02 [emerg] 1#1: broken']}))
    expect(severe.ok).toBe(false)
    expect(severe.detail).toContain('1 emerg/alert/crit lines in the error log (gateway stderr) since the run began')
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
