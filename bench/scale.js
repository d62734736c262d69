#!/usr/bin/env node
// Scale figures, not assertions. `npm run build && node bench/scale.js [--rate 250] [--lanes 8] [--post-every 4] [--only ours,reload,seed] [--no-rolling] [--json] [--keep]`
// (bench/run.js, which `npm run bench` runs, calls it at the end).
//
// One generated project, one run, under a paced HTTPS load on /api/ (keep-alive, 127.0.0.1 only,
// below the route's rate limit, every 4th request a POST) from test/helpers/load.js, the generator the
// end-to-end tests use: it never re-sends a request, so a reset or a close on a reused connection is a
// failed request here, as it is for wrk or any client that does not retry. Side by side:
//   ours    `create-gateway scale web=3`, then `scale web=1`, on the upstreams.conf `init` writes
//   reload  the same commands after upstreams.conf was rewritten in the classic form (one
//           `server <container>:8000 max_fails=...;` per replica, no `resolve`), which makes `scale`
//           take the reload path: rewrite, `nginx -t`, `nginx -s reload`
//   seed    the guide's way on the same running project: `docker compose up -d --scale web=3`, rewrite the
//           upstream as the guide says, `nginx -s reload` in the gateway; then the same back to 1; and
//           the same again with `--no-recreate`, which isolates the edit-and-reload part from Compose
//           recreating containers it did not create.
// Then the rolling update after a code change, the same three ways, on a stack of ours at web=2:
// `create-gateway up` (ours, then on the classic upstreams.conf), and `docker compose up -d --build
// --scale web=2` with the guide's upstream (`server web:8000`) loaded first.
// For each: which form upstreams.conf had (`resolve` or not), the command's time, the time until the
// expected replicas (and only they) answer, requests sent, and failed requests by kind (reset, closed
// with the request pending, timeout, connect, non-2xx), with when the failures happened.
// Ports come from 28000-28999; everything is removed by its Compose label at the end, even on failure.
import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {parseArgs} from 'node:util'

import Docker from 'dockerode'

import {loadManifest} from '../dist/manifest/load.js'
import {renderUpstreams} from '../dist/render/gateway.js'
import {describeLoad, startLoad} from '../test/helpers/load.js'
import {cli, log, pickPorts, removeProject, runCommand, sleep, baseImageFlags} from './lib.js'
import {execIn, gatewayContainer, seedScale, upstreamText, webContainers} from './scale-stack.js'

const {values: flags} = parseArgs({
  options: {
    rate: {type: 'string', default: '250'},
    lanes: {type: 'string', default: '8'},
    'post-every': {type: 'string', default: '4'},
    only: {type: 'string', default: 'ours,reload,seed'},
    'no-rolling': {type: 'boolean', default: false},
    json: {type: 'boolean', default: false},
    keep: {type: 'boolean', default: false},
  },
})
const RATE = Math.min(800, Math.max(10, Number(flags.rate)))
const LANES = Math.min(32, Math.max(1, Number(flags.lanes)))
/** Every Nth request of a lane is a POST (0: none): NGINX never retries a POST it has sent upstream. */
const POST_EVERY = Math.max(0, Number(flags['post-every']))
const ONLY = new Set(flags.only.split(',').map((way) => way.trim()))
const DOMAIN = 'api.localhost'
const MAX_LOAD_MS = 10 * 60_000
const CONVERGE_LIMIT_MS = 120_000
const docker = new Docker()
const now = () => performance.now()

/** Which form gateway/conf.d/upstreams.conf has now: `scale` takes the reload path unless its servers carry `resolve`. */
function upstreamForm(dir) {
  const text = readFileSync(join(dir, 'gateway/conf.d/upstreams.conf'), 'utf8').replace(/#[^\n]*/g, '')
  const servers = [...text.matchAll(/^\s*server\s+([^\s;]+)([^;]*);/gm)]
  const hosts = servers.map((match) => match[1].replace(/:\d+$/, '')).join(' ')
  return `${servers.some((match) => /\bresolve\b/.test(match[2])) ? 'resolve' : 'no resolve'}: ${hosts}`
}

/**
 * One step under load: warm up, run `action`, then wait (bounded) until exactly `count` web
 * replicas run and the load has seen each of them answer and nothing else answer for 2 s.
 */
async function step(label, project, dir, port, ca, count, action) {
  const formBefore = upstreamForm(dir)
  const started = now()
  const answers = []
  const load = startLoad({
    port,
    tls: {ca, servername: DOMAIN},
    lanes: LANES,
    rate: RATE,
    postRatio: POST_EVERY > 0 ? 1 / POST_EVERY : 0,
    path: '/api/',
    maxRequests: Math.ceil((RATE * MAX_LOAD_MS) / 1000),
    durationMs: MAX_LOAD_MS,
    timeoutMs: 10_000,
    onAnswer: ({body}) => answers.push({done: now() - started, hostname: /"hostname": ?"([^"]+)"/.exec(body)?.[1]}),
  })
  await sleep(2_000)
  const t0 = now() - started
  const notes = []
  const commandMs = await action(notes)
  let servingMs
  while (now() - started - t0 < CONVERGE_LIMIT_MS) {
    const expected = await webContainers(project)
    const elapsed = now() - started
    const since = answers.filter((answer) => answer.done >= t0)
    const isOther = (answer) => answer.hostname && !expected.some((container) => container.hostname === answer.hostname)
    const firstSeen = expected.map((container) => since.find((answer) => answer.hostname === container.hostname)?.done)
    if (
      expected.length === count &&
      firstSeen.every((seen) => seen !== undefined) &&
      !since.some((answer) => answer.done > elapsed - 2_000 && isOther(answer)) &&
      elapsed - t0 > commandMs
    ) {
      servingMs = Math.max(...firstSeen, since.filter(isOther).at(-1)?.done ?? 0) - t0
      break
    }

    await sleep(250)
  }

  await sleep(3_000)
  const report = await load.stop()
  const kinds = {}
  for (const failure of report.failures) {
    const kind = `${failure.method} ${failure.kind === 'status' ? `HTTP ${failure.status}` : failure.kind}${failure.reused ? ' (reused)' : ''}`
    kinds[kind] = (kinds[kind] ?? 0) + 1
  }

  // What a client that retries an idempotent request once on a new connection (RFC 9112 9.3.1:
  // browsers, curl, Go) would not have seen: GETs that got no answer at all on a reused connection.
  const hiddenByRetry = report.failures.filter(
    (failure) =>
      failure.method === 'GET' && failure.reused && ['reset', 'closed'].includes(failure.kind) && !failure.status,
  ).length
  const window =
    report.failures.length > 0
      ? [report.failures[0].atMs, report.failures.at(-1).atMs].map((ms) => Number(((ms - t0) / 1000).toFixed(1)))
      : null
  return {
    step: label,
    upstreams: {before: formBefore, after: upstreamForm(dir)},
    commandMs: Math.round(commandMs),
    servingMs: servingMs === undefined ? null : Math.round(servingMs),
    requests: report.sent,
    answered: report.answered,
    failed: report.failed,
    errors: report.errors,
    non2xx: report.non2xx,
    reconnects: report.reconnects,
    hiddenByRetry,
    kinds,
    failureWindowS: window,
    load: describeLoad(report),
    notes,
  }
}

const runId = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`
const project = `cgbench-scale-${runId}`
const workdir = mkdtempSync(join(tmpdir(), 'cg-bench-scale-'))
const dir = join(workdir, project)
const rows = []
let interrupted = false
// Ctrl-C ends the run after the current step and still removes everything.
process.once('SIGINT', () => {
  interrupted = true
  log('interrupted: finishing the current step, then cleaning up')
})

async function cleanup() {
  if (flags.keep) {
    log(`kept ${project} in ${dir}`)
    return
  }

  await removeProject(docker, project, dir, workdir)
}

try {
  await docker.ping()
  const [http, https] = await pickPorts(28_000, 2)
  const {flags: images} = await baseImageFlags(docker)
  const init = await runCommand(process.execPath, [
    cli,
    'init',
    dir,
    '--yes',
    '--name',
    project,
    '--domain',
    DOMAIN,
    '--http-port',
    String(http),
    '--https-port',
    String(https),
    '--replicas',
    '1',
    '--rate',
    '1000r/s',
    '--burst',
    '1000',
    ...images,
  ])
  if (init.status !== 0) throw new Error(`init failed:\n${init.stderr}`)
  log(`project ${project} on 127.0.0.1:${https}, load ${RATE} requests/s over ${LANES} keep-alive connections`)
  const up = await runCommand(process.execPath, [cli, 'up', '--dir', dir], {timeoutMs: 600_000})
  if (up.status !== 0) throw new Error(`up failed:\n${up.stderr}`)
  const ca = readFileSync(join(dir, 'certs', 'ca.pem'))
  const upstreamsFile = join(dir, 'gateway/conf.d/upstreams.conf')
  // What `init` wrote: "ours" always starts from it, whichever form this version of create-gateway writes.
  const initUpstreams = readFileSync(upstreamsFile)

  /**
   * The reload path, forced: upstreams.conf in the classic form, one `server <container>:8000
   * max_fails=...;` per running replica, rendered by our own code (dist/) with any `resolve` taken off,
   * then tested and loaded, and 2 s for the old workers to go, all before the step's load starts.
   * `scale` and `up` keep the reload path while the servers carry no `resolve`.
   */
  const forceReloadPath = async () => {
    const names = (await webContainers(project)).sort((a, b) => a.number - b.number).map((container) => container.name)
    const rendered = await renderUpstreams(await loadManifest(dir), {web: names})
    writeFileSync(upstreamsFile, rendered.replace(/^(\s*server\s[^;]*?)\s+resolve\b/gm, '$1'))
    const gateway = await gatewayContainer(project)
    const test = gateway ? await execIn(gateway.id, ['nginx', '-t']) : {exitCode: -1, output: 'no gateway'}
    if (test.exitCode !== 0) throw new Error(`the classic upstreams.conf does not load: ${test.output}`)
    await execIn(gateway.id, ['nginx', '-s', 'reload'])
    await sleep(2_000)
  }

  const scaleCommand = (count) => async (notes) => {
    const result = await runCommand(process.execPath, [cli, 'scale', `web=${count}`, '--dir', dir], {
      timeoutMs: 300_000,
    })
    notes.push(
      `create-gateway scale web=${count}: exit ${result.status}${result.status === 0 ? '' : `: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}`}`,
    )
    return result.ms
  }

  // A code change both ways: the release marker in the sample view, so the image is rebuilt and
  // every replica must be replaced.
  const views = join(dir, 'services/web/config/views.py')
  const original = readFileSync(views, 'utf8')
  const codeChange = (release) =>
    writeFileSync(
      views,
      original.replace(
        "'hostname': socket.gethostname(),",
        `'hostname': socket.gethostname(),\n        'release': '${release}',`,
      ),
    )
  const oursRedeploy = (release) => async (notes) => {
    codeChange(release)
    const result = await runCommand(process.execPath, [cli, 'up', '--dir', dir], {timeoutMs: 600_000})
    notes.push(
      `create-gateway up after a code change: exit ${result.status}; ${result.stdout
        .split('\n')
        .filter((line) => /is up|Rolling/.test(line))
        .join(' ')}`,
    )
    return result.ms
  }

  const seedRedeploy = async (notes) => {
    codeChange('seed')
    const args = ['-p', project, 'up', '-d', '--build', '--scale', 'web=2']
    const result = await runCommand('docker', ['compose', ...args], {cwd: dir, timeoutMs: 600_000})
    const lines = `${result.stdout}\n${result.stderr}`
      .split('\n')
      .filter((line) => /done|error|Recreating|Creating/i.test(line))
      .map((line) => line.replace(/\s+/g, ' ').trim())
    notes.push(
      `docker compose ${args.join(' ')}: exit ${result.status} in ${(result.ms / 1000).toFixed(1)} s; ${[...new Set(lines)].join('; ')}`,
    )
    return result.ms
  }

  // Before the seed's redeploy: the guide's upstream (`server web:8000`, Docker's DNS over the replicas), loaded.
  const seedUpstream = async () => {
    writeFileSync(join(dir, 'gateway/conf.d/upstreams.conf'), upstreamText(project, ['web']))
    const gateway = await gatewayContainer(project)
    if (gateway) await execIn(gateway.id, ['nginx', '-s', 'reload'])
    // As after forceReloadPath: the connections this reload closes are not the step's to count.
    await sleep(2_000)
  }

  const freshStackOfTwo = async () => {
    await runCommand('docker', ['compose', '-p', project, 'down', '--remove-orphans'], {
      cwd: dir,
      timeoutMs: 120_000,
    }).catch(() => {})
    await runCommand(process.execPath, [cli, 'down', '--dir', dir], {timeoutMs: 120_000})
    writeFileSync(upstreamsFile, initUpstreams)
    for (const args of [['up'], ['scale', 'web=2']]) {
      const result = await runCommand(process.execPath, [cli, ...args, '--dir', dir], {timeoutMs: 600_000})
      if (result.status !== 0) throw new Error(`${args.join(' ')} failed:\n${result.stderr}`)
    }
  }

  const compose = (await runCommand('docker', ['compose', 'version'], {timeoutMs: 30_000})).status === 0
  if (!compose)
    log('docker compose (Compose v2) is not installed (fixtures/compose/install-compose-v2.sh): only our own steps run')
  const steps = [
    ['ours', 'ours: scale web=3', 3, scaleCommand(3)],
    ['ours', 'ours: scale web=1', 1, scaleCommand(1)],
    ['reload', 'reload path: scale web=3', 3, scaleCommand(3), forceReloadPath],
    ['reload', 'reload path: scale web=1', 1, scaleCommand(1)],
    [
      'seed',
      'seed: compose --scale web=3 + upstream + reload',
      3,
      (notes) => seedScale(project, dir, 3, notes, {checkLiteral: true}),
    ],
    ['seed', 'seed: compose --scale web=1 + upstream + reload', 1, (notes) => seedScale(project, dir, 1, notes)],
    // The same without the recreation Compose v1 does on a stack it did not create: the reload alone.
    [
      'seed',
      'seed: compose --no-recreate --scale web=3 + reload',
      3,
      (notes) => seedScale(project, dir, 3, notes, {noRecreate: true}),
    ],
    ['seed', 'seed: compose --scale web=1 + upstream + reload', 1, (notes) => seedScale(project, dir, 1, notes)],
  ]
  if (!flags['no-rolling'])
    steps.push(
      // The redeploys start from a stack of ours again (the seed steps above left Compose's containers).
      ['ours', 'ours: up after a code change (web=2, rolling)', 2, oursRedeploy('ours'), freshStackOfTwo],
      ['reload', 'reload path: up after a code change (rolling)', 2, oursRedeploy('reload'), forceReloadPath],
      ['seed', 'seed: compose up -d --build after a code change', 2, seedRedeploy, seedUpstream],
    )
  // The rolling steps need the stack of two that "ours" makes; without it the first rolling step makes it.
  let freshStack = false
  for (const [way, label, count, action, before] of steps.filter(
    ([way]) => ONLY.has(way) && (compose || way !== 'seed'),
  )) {
    if (interrupted) break
    if (label.includes('code change') && !freshStack) {
      freshStack = true
      if (before !== freshStackOfTwo) await freshStackOfTwo()
    }

    if (before) await before()
    log(`${label} (upstreams.conf: ${upstreamForm(dir)})`)
    rows.push({way, ...(await step(label, project, dir, https, ca, count, action))})
  }
} finally {
  await cleanup()
}

if (flags.json) {
  console.log(JSON.stringify({rate: RATE, lanes: LANES, postEvery: POST_EVERY, steps: rows}, null, 2))
} else {
  const seconds = (ms) => (ms === null ? 'never' : `${(ms / 1000).toFixed(1)} s`)
  console.log(
    `scale under load: ${RATE} requests/s on /api/ over ${LANES} keep-alive HTTPS connections (127.0.0.1)${POST_EVERY ? `, every ${POST_EVERY}th a POST` : ''}, never retried`,
  )
  const columns = [
    ['step', 50, (row) => row.step],
    ['upstreams', 11, (row) => row.upstreams.before.split(':')[0]],
    ['command', 8, (row) => seconds(row.commandMs)],
    ['serving', 8, (row) => seconds(row.servingMs)],
    ['requests', 9, (row) => row.requests],
    ['failed', 7, (row) => row.failed],
    ['reset', 6, (row) => row.errors.reset],
    ['closed', 7, (row) => row.errors.closed],
    ['timeout', 8, (row) => row.errors.timeout],
    ['connect', 8, (row) => row.errors.connect],
    ['non-2xx', 8, (row) => row.non2xx],
    ['GET-retry', 10, (row) => row.hiddenByRetry],
  ]
  console.log(
    columns.map(([name, width], index) => (index === 0 ? name.padEnd(width) : name.padStart(width))).join(' '),
  )
  for (const row of rows) {
    console.log(
      columns
        .map(([, width, cell], index) =>
          index === 0 ? String(cell(row)).padEnd(width) : String(cell(row)).padStart(width),
        )
        .join(' '),
    )
    if (row.failed > 0) {
      const kinds = Object.entries(row.kinds)
        .map(([kind, count]) => `${count} ${kind}`)
        .join(', ')
      console.log(
        `    ${kinds}, sent at ${row.failureWindowS[0]}..${row.failureWindowS[1]} s after the command started`,
      )
    }
  }

  console.log(
    [
      '',
      '"upstreams": the form of gateway/conf.d/upstreams.conf when the step started (`scale` takes the reload path unless its servers carry `resolve`).',
      '"command": wall time of the command(s). "serving": until exactly the expected replicas answer (first answer of each, last answer of a leaving one).',
      '"failed": requests without a full 2xx answer; the generator never re-sends one (test/helpers/load.js). "reset": RST or EPIPE; "closed": the',
      'server closed the connection with the request pending (no answer or a cut one); "timeout": no full answer in 10 s; "connect": no connection.',
      '"GET-retry": of the failed, the GETs with no answer at all on a reused connection, which a client that retries an idempotent request once',
      'on a new connection (RFC 9112 9.3.1: browsers, curl, Go) would not have seen. A POST is never retried.',
    ].join('\n'),
  )
  for (const row of rows) {
    console.log(`  ${row.step}: upstreams.conf ${row.upstreams.before} -> ${row.upstreams.after}; load: ${row.load}`)
    for (const note of row.notes) console.log(`  ${row.step}: ${note}`)
  }
}
