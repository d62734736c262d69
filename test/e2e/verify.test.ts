import {readFileSync, rmSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {generateSelfSigned} from '../../src/certs/self-signed.js'
import {retryUntil} from '../../src/util/retry.js'
import type {reportDocument} from '../../src/verify/report.js'
import {CHECK_IDS} from '../../src/verify/types.js'
import {ROOT, tempDir} from '../helpers/cli.js'
import {
  cleanupRun,
  docker,
  freePort,
  gatewayAccessLog,
  newRunId,
  OFFLINE_IMAGES,
  projectContainersChecked,
  runCliAsync,
  runCommand,
  waitForEngineAndImages,
} from '../helpers/e2e.js'

/**
 * `verify` against a real stack, run through the built CLI as a user would: a fresh init + up passes
 * every check; then each fault, one at a time and each followed by its fix, makes its check fail.
 * The project carries the run id in its name and labels; afterAll removes it whatever happened.
 */

const RUN_ID = newRunId()
const ENV = {CREATE_GATEWAY_RUN_ID: RUN_ID}
const DOMAIN = 'api.localhost'
const NAME = `cgv-${RUN_ID}`
const projects = [NAME]
let dir = ''
let parent = ''

/** Run the built CLI as a user would (stdin not a terminal), in the project's parent folder. */
const cli = (args: string[], timeoutMs = 180_000) => runCliAsync(args, {cwd: parent, env: ENV, timeoutMs})

type Report = ReturnType<typeof reportDocument>

interface VerifyRun {
  status: number | null
  report: Report
  stderr: string
  ms: number
}

async function verify(...args: string[]): Promise<VerifyRun> {
  const result = await cli(['verify', '--dir', dir, '--json', ...args])
  let report: Report
  try {
    report = JSON.parse(result.stdout) as Report
  } catch {
    throw new Error(`verify --json printed no JSON (exit ${result.status}):\n${result.stdout}\n${result.stderr}`)
  }

  return {status: result.status, report, stderr: result.stderr, ms: result.ms}
}

function failedIds(run: VerifyRun): string[] {
  return run.report.checks.filter((check) => !check.ok).map((check) => check.id)
}

function check(run: VerifyRun, id: string): Report['checks'][number] {
  const found = run.report.checks.find((candidate) => candidate.id === id)
  if (!found) throw new Error(`no check ${id} in the report`)
  return found
}

/** Everything a failing run printed, for assertion messages. */
function explain(run: VerifyRun): string {
  return run.report.checks.map((c) => `${c.id}: ${c.ok ? 'ok' : 'FAIL'} ${c.detail}`).join('\n')
}

const gateway = () => `${NAME}-gateway-1`

function dockerCli(...args: string[]): string {
  const result = runCommand('docker', args, ROOT, 120_000)
  if (result.status !== 0) throw new Error(`docker ${args.join(' ')} failed: ${result.stderr}`)
  return result.stdout
}

function reload(): void {
  dockerCli('exec', gateway(), 'nginx', '-s', 'reload')
}

/** Edit a project file for one fault; the returned function puts it back. */
function editFile(relative: string, edit: (text: string) => string): () => void {
  const file = join(dir, relative)
  const original = readFileSync(file)
  const changed = edit(original.toString('utf8'))
  expect(changed).not.toBe(original.toString('utf8'))
  writeFileSync(file, changed)
  return () => writeFileSync(file, original)
}

async function waitHealthy(container: string): Promise<void> {
  await retryUntil(
    async () => (await docker.getContainer(container).inspect()).State.Health?.Status ?? 'none',
    (health) => health === 'healthy',
    {timeoutMs: 120_000, intervalMs: 1000, describe: `${container} to be healthy`, explain: (health) => health},
  )
}

beforeAll(async () => {
  await waitForEngineAndImages(300_000)
  parent = tempDir('cg-verify-e2e-')
  dir = join(parent, NAME)
  const http = await freePort()
  let https = await freePort()
  while (https === http) https = await freePort()
  // An external service too (api-key protected): it points at a replica over the project network, so
  // no request leaves this machine.
  const init = await cli(
    [
      'init',
      dir,
      '--yes',
      '--name',
      NAME,
      '--domain',
      DOMAIN,
      '--http-port',
      String(http),
      '--https-port',
      String(https),
      '--external',
      `payment=http://${NAME}-web-1:8000`,
      '--route',
      '/payment/=payment:api-key',
      '--route',
      '/private/=web:jwt',
      '--python-image',
      OFFLINE_IMAGES.python,
      '--nginx-image',
      OFFLINE_IMAGES.nginx,
    ],
    60_000,
  )
  expect(init.status, init.stderr).toBe(0)
  const up = await cli(['up', '--dir', dir, '--timeout', '180'], 600_000)
  expect(up.status, `${up.stdout}\n${up.stderr}`).toBe(0)
}, 900_000)

afterAll(async () => {
  if (dir) await cli(['down', '--dir', dir], 120_000).catch(() => undefined)
  await cleanupRun(RUN_ID, projects)
  if (parent) rmSync(parent, {recursive: true, force: true})
}, 180_000)

describe('verify on a fresh stack', () => {
  it('passes every check, well under a minute, with exit code 0', async () => {
    const run = await verify()
    console.log(`[e2e] verify (all checks) took ${run.ms} ms (report: ${run.report.durationMs} ms)\n${explain(run)}`)
    expect(run.status, explain(run)).toBe(0)
    expect(run.report.ok).toBe(true)
    expect(run.report.checks.map((c) => c.id)).toEqual([...CHECK_IDS])
    expect(failedIds(run)).toEqual([])
    expect(run.report.durationMs).toBeLessThan(60_000)

    const rate = check(run, 'rate-limit').data as {
      accepted: number
      rejected: number
      status: number
      amount: number
      expected: {min: number; max: number}
    }
    expect(rate.accepted + rate.rejected).toBe(rate.amount)
    expect(rate.accepted).toBeGreaterThanOrEqual(rate.expected.min)
    expect(rate.accepted).toBeLessThanOrEqual(rate.expected.max)
    expect(rate.status).toBe(503)

    // The jwt route: no token, a wrongly signed one and an expired one refused, verify's own accepted.
    const auth = check(run, 'auth').data as {
      routes: Array<{path: string; auth: string; attempts: Array<{credentials: string; status: number; ok: boolean}>}>
    }
    expect(auth.routes.find((route) => route.path === '/private/')).toEqual({
      path: '/private/',
      auth: 'jwt',
      attempts: [
        {credentials: 'none', status: 401, ok: true},
        {credentials: 'wrong', status: 401, ok: true},
        {credentials: 'expired', status: 401, ok: true},
        {credentials: 'valid', status: 200, ok: true},
      ],
    })

    const balance = check(run, 'balance').data as {
      services: Array<{service: string; hostnames: Record<string, number>}>
    }
    expect(Object.keys(balance.services[0]!.hostnames)).toHaveLength(2)

    // The request ids of the run really are in the gateway's access log (its stdout, as the engine keeps it).
    const access = await gatewayAccessLog(NAME)
    expect(access).toContain(`"request_id":"verify-${run.report.runId}-1"`)
  }, 180_000)

  it('prints a table that agrees with --json, and the summary line', async () => {
    const json = await verify('--skip', 'rate-limit')
    const table = await cli(['verify', '--dir', dir, '--skip', 'rate-limit'])
    expect(table.status, table.stdout).toBe(0)
    const lines = table.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^check\s+result\s+detail\s+time$/)
    const rows = lines
      .slice(1, lines.indexOf(''))
      .filter((line) => /^\S/.test(line))
      .map((line) => line.split(/\s+/).slice(0, 2))
    expect(rows).toEqual(
      json.report.checks.map((c) => [c.id, !c.ok ? 'FAIL' : c.skipped ? 'skip' : c.warn ? 'warn' : 'pass']),
    )
    expect(lines.at(-1)).toMatch(/^8 passed, 1 skipped, 0 failed in \d+\.\d s$/)
    // Progress goes to stderr, never into the table or the JSON.
    expect(table.stderr).toContain('- checking containers:')
    expect(json.stderr).toBe('')
  }, 180_000)

  it('refuses unknown check ids with exit code 2', async () => {
    const result = await cli(['verify', '--dir', dir, '--only', 'tls,speed'], 60_000)
    expect(result.status).toBe(2)
    expect(result.stderr).toContain('--only: unknown check "speed"')
    expect(result.stdout).toBe('')
  })

  it('runs only what --only names', async () => {
    const run = await verify('--only', 'logs,config')
    expect(run.status).toBe(0)
    expect(run.report.checks.map((c) => c.id)).toEqual(['config', 'logs'])
  }, 60_000)
})

describe('each fault fails its check, and its fix passes it again', () => {
  it('rate limiting removed from the config -> rate-limit fails', async () => {
    const restore = editFile('gateway/conf.d/gateway.conf', (text) =>
      text.replace(/^(\s*)limit_req zone=.*$/gm, '$1# limit_req removed by the verify e2e test'),
    )
    try {
      reload()
      const run = await verify()
      expect(run.status, explain(run)).toBe(1)
      expect(failedIds(run), explain(run)).toEqual(['rate-limit'])
      expect(check(run, 'rate-limit').detail).toMatch(
        /100 accepted, outside the \d+-\d+ the limit allows: no 503 at all/,
      )
    } finally {
      restore()
      reload()
    }

    const fixed = await verify('--only', 'rate-limit')
    expect(fixed.status, explain(fixed)).toBe(0)
  }, 240_000)

  it('a replica stopped -> containers and balance fail', async () => {
    const replica = `${NAME}-web-2`
    try {
      dockerCli('stop', '-t', '2', replica)
      const run = await verify()
      expect(run.status, explain(run)).toBe(1)
      expect(failedIds(run), explain(run)).toEqual(expect.arrayContaining(['containers', 'balance']))
      expect(check(run, 'containers').detail).toContain(`${replica} exited`)
      expect(check(run, 'balance').detail).toMatch(/reached 1 of 2 replicas/)
    } finally {
      dockerCli('start', replica)
      await waitHealthy(replica)
      // The restarted replica may have a new address: NGINX resolves upstream names when it loads.
      reload()
    }

    const fixed = await verify('--only', 'containers,config,balance')
    expect(fixed.status, explain(fixed)).toBe(0)
  }, 300_000)

  it('a certificate for another name -> tls fails; `certs` fixes it on the running gateway', async () => {
    const other = await generateSelfSigned({domain: 'other.example'})
    const restoreCert = editFile('certs/fullchain.pem', () => other.cert)
    const restoreKey = editFile('certs/privkey.pem', () => other.key)
    let fixedByCli = false
    try {
      reload()
      const run = await verify()
      expect(run.status, explain(run)).toBe(1)
      expect(failedIds(run), explain(run)).toEqual(['tls'])
      expect(check(run, 'tls').detail).toContain(`certificate not valid for ${DOMAIN} (names: DNS:other.example`)
      // The user's fix: `certs` signs a new one with the project CA and brings the running gateway onto it.
      const certs = await cli(['certs', '--dir', dir])
      expect(certs.status, certs.stderr).toBe(0)
      expect(certs.stdout).toContain(`${gateway()} serves it now (nginx -t, reload, fingerprint confirmed over TLS).`)
      fixedByCli = true
    } finally {
      if (!fixedByCli) {
        restoreCert()
        restoreKey()
        reload()
      }
    }

    const fixed = await verify('--only', 'tls')
    expect(fixed.status, explain(fixed)).toBe(0)
  }, 240_000)

  it('auth removed from a protected route -> auth fails', async () => {
    const restore = editFile('gateway/conf.d/gateway.conf', (text) =>
      text.replace(/^(\s*)auth_basic "[^"]*";$/m, '$1auth_basic off;'),
    )
    try {
      reload()
      const run = await verify()
      expect(run.status, explain(run)).toBe(1)
      expect(failedIds(run), explain(run)).toEqual(['auth'])
      expect(check(run, 'auth').detail).toContain('/secure/ (basic) with no credentials: 200, expected 401')
    } finally {
      restore()
      reload()
    }

    const fixed = await verify('--only', 'auth')
    expect(fixed.status, explain(fixed)).toBe(0)
  }, 240_000)

  it('a syntax error in a conf.d file -> config fails, with the nginx -t output', async () => {
    const broken = join(dir, 'gateway', 'conf.d', 'zz-verify-broken.conf')
    try {
      writeFileSync(broken, 'server {\n    listen 8099\n')
      const run = await verify()
      expect(run.status, explain(run)).toBe(1)
      expect(failedIds(run), explain(run)).toEqual(['config'])
      expect(check(run, 'config').detail).toMatch(/\[emerg\].*zz-verify-broken\.conf/)
    } finally {
      rmSync(broken, {force: true})
    }

    const fixed = await verify('--only', 'config')
    expect(fixed.status, explain(fixed)).toBe(0)
  }, 240_000)

  it('an external upstream that does not answer -> routes fails and names the upstream', async () => {
    // 127.0.0.1:9 inside the gateway container: refused at once, and nothing leaves the machine.
    const restore = editFile('gateway/conf.d/gateway.conf', (text) =>
      text.replace(/(set \$external_payment )[^;]+;/, '$1http://127.0.0.1:9;'),
    )
    try {
      reload()
      const run = await verify('--only', 'routes,auth')
      expect(run.status, explain(run)).toBe(1)
      expect(failedIds(run), explain(run)).toEqual(['routes'])
      expect(check(run, 'routes').detail).toMatch(
        /^upstream payment unreachable \(502 from gateway\): connect\(\) failed \(111: Connection refused\)/,
      )
    } finally {
      restore()
      reload()
    }

    const fixed = await verify('--only', 'routes')
    expect(fixed.status, explain(fixed)).toBe(0)
  }, 120_000)

  it('render after editing gateway.yaml: burst 20 -> 5 is live after a confirmed reload, and back again', async () => {
    const restore = editFile('gateway.yaml', (text) =>
      text.replace(/(rateLimit:\n\s+rate: 10r\/s\n\s+)burst: 20/, '$1burst: 5'),
    )
    try {
      const rendered = await cli(['render', '--dir', dir])
      expect(rendered.status, rendered.stderr).toBe(0)
      expect(rendered.stdout).toContain('updated  gateway/conf.d/gateway.conf')
      expect(rendered.stdout).toMatch(/Gateway: nginx -t passed; reloaded \(workers [\d, ]+ -> [\d, ]+, \d+ ms\)\./)
      // The rate-limit check reads the new burst from gateway.yaml: it passes only if NGINX enforces 5.
      const run = await verify('--only', 'rate-limit')
      expect(run.status, explain(run)).toBe(0)
      expect(check(run, 'rate-limit').detail).toContain('burst 5')
      const accepted = Number(/(\d+) accepted/.exec(check(run, 'rate-limit').detail)?.[1])
      expect(accepted).toBeLessThan(15)
    } finally {
      restore()
      const back = await cli(['render', '--dir', dir])
      expect(back.status, back.stderr).toBe(0)
    }

    const again = await verify('--only', 'config,rate-limit')
    expect(again.status, explain(again)).toBe(0)
    expect(check(again, 'rate-limit').detail).toContain('burst 20')
  }, 180_000)

  it('after every fix the whole checklist passes again', async () => {
    const run = await verify()
    expect(run.status, explain(run)).toBe(0)
    expect(run.report.ok).toBe(true)
  }, 180_000)
})

describe('a service added in gateway.yaml, as a user adds one', () => {
  it('render scaffolds it and says up comes next; up builds and starts it behind the running gateway; the checklist routes to it', async () => {
    const gatewayBefore = (await docker.getContainer(gateway()).inspect()).Id
    editFile('gateway.yaml', (text) =>
      text
        .replace(/\nroutes:\n/, '\n  orders:\n    kind: django\n    replicas: 1\n    port: 8000\nroutes:\n')
        .replace(/\nimages:\n/, '\n  - path: /orders/\n    service: orders\nimages:\n'),
    )
    const rendered = await cli(['render', '--dir', dir])
    expect(rendered.status, rendered.stderr).toBe(0)
    expect(rendered.stdout).toContain('created  services/orders/Dockerfile')
    expect(rendered.stdout).toContain('Next: docker-compose.yml and .env changed: `create-gateway up` applies them')

    const up = await cli(['up', '--dir', dir, '--timeout', '180'], 600_000)
    expect(up.status, `${up.stdout}\n${up.stderr}`).toBe(0)
    expect(up.stderr).toContain(`Creating ${NAME}-orders-1`)
    // The gateway stayed (no restart): it was reloaded onto the configuration that routes /orders/.
    expect((await docker.getContainer(gateway()).inspect()).Id).toBe(gatewayBefore)
    await projectContainersChecked(NAME)
    const run = await verify('--only', 'containers,config,routes')
    expect(run.status, explain(run)).toBe(0)
    expect(check(run, 'routes').detail).toContain('/orders/ -> orders')
  }, 600_000)
})
