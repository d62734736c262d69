#!/usr/bin/env node
// Scale figures, not assertions. `npm run build && node bench/scale.js [--rate 250] [--lanes 8] [--post-every 4] [--json] [--keep]`
// (bench/run.js, which `npm run bench` runs, calls it at the end).
//
// One generated project, one run, under a paced HTTPS load on /api/ (keep-alive, 127.0.0.1 only,
// below the route's rate limit, every 4th request a POST), eight steps:
//   ours   `create-gateway scale web=3`, then `create-gateway scale web=1`
//   seed   the guide's way on the same running project: `docker compose up -d --scale web=3`, rewrite the
//          upstream as the guide says, `nginx -s reload` in the gateway; then the same back to 1.
//   seed   the same again with `--no-recreate`, which isolates the edit-and-reload part from Compose
//          recreating containers it did not create.
//   ours   on a fresh stack of ours at web=2: a code change, then `create-gateway up` (the rolling update)
//   seed   the same code change, then `docker compose up -d --build --scale web=2`, the guide's upstream
//          (`server web:8000`) loaded first.
// For each: the command's time, the time until the expected replicas (and only they) answer, requests
// sent, and failed requests (non-2xx, connection errors, timeouts), with when the failures happened.
// Ports come from 28000-28999; everything is removed by its Compose label at the end, even on failure.
import {spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {Agent, request} from 'node:https'
import {createServer} from 'node:net'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {performance} from 'node:perf_hooks'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import Docker from 'dockerode'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const cli = join(root, 'bin', 'run.js')
const {values: flags} = parseArgs({
  options: {
    rate: {type: 'string', default: '250'},
    lanes: {type: 'string', default: '8'},
    'post-every': {type: 'string', default: '4'},
    json: {type: 'boolean', default: false},
    keep: {type: 'boolean', default: false},
  },
})
const RATE = Math.min(800, Math.max(10, Number(flags.rate)))
const LANES = Math.min(32, Math.max(1, Number(flags.lanes)))
/** Every Nth request of a lane is a POST (0: none): NGINX never retries a POST it has sent upstream. */
const POST_EVERY = Math.max(0, Number(flags['post-every']))
const DOMAIN = 'api.localhost'
const MAX_LOAD_MS = 10 * 60_000
const CONVERGE_LIMIT_MS = 120_000
const docker = new Docker()
const log = (line) => process.stderr.write(`- ${line}\n`)
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const now = () => performance.now()

function runCommand(command, args, options = {}) {
  const started = now()
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? root,
      env: {...process.env, NO_COLOR: '1', ...options.env},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.stderr.on('data', (chunk) => (stderr += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000)
    child.on('error', (error) => {
      clearTimeout(timer)
      resolve({status: -1, stdout, stderr: `${stderr}${error.message}`, ms: now() - started})
    })
    child.on('close', (status) => {
      clearTimeout(timer)
      resolve({status, stdout, stderr, ms: now() - started})
    })
  })
}

function portFree(port) {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen({host: '127.0.0.1', port, exclusive: true}, () => server.close(() => resolve(true)))
  })
}

async function pickPorts() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const http = 28_000 + 2 * Math.floor(Math.random() * 499)
    if ((await portFree(http)) && (await portFree(http + 1))) return [http, http + 1]
  }

  throw new Error('no two free ports in 28000-28999 on 127.0.0.1')
}

/**
 * A paced load: LANES keep-alive lanes, RATE requests/s in all, each request with a 10 s timeout.
 * Every request is counted once: 2xx, non-2xx, or an error (refused, reset, timeout). A client that
 * does not retry, so a connection the gateway drops shows up here.
 */
function startLoad({port, ca}) {
  const agent = new Agent({keepAlive: true, maxSockets: LANES, ca, servername: DOMAIN})
  const started = now()
  const results = []
  let stopped = false
  const interval = (1000 * LANES) / RATE
  // `fresh`: a new connection outside the pool, whose other idle sockets the same worker closed too.
  const attempt = (method, fresh = false) =>
    new Promise((resolve) => {
      const via = fresh ? {agent: false, ca} : {agent}
      const body = method === 'POST' ? JSON.stringify({bench: true}) : undefined
      const headers = {
        host: `${DOMAIN}:${port}`,
        ...(body ? {'content-type': 'application/json', 'content-length': Buffer.byteLength(body)} : {}),
      }
      const req = request(
        {host: '127.0.0.1', port, path: '/api/', method, ...via, servername: DOMAIN, headers, timeout: 10_000},
        (res) => {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (chunk) => (body += chunk))
          res.on('end', () => resolve({status: res.statusCode, hostname: /"hostname": ?"([^"]+)"/.exec(body)?.[1]}))
          res.on('error', (error) => resolve({error: error.code ?? error.message}))
        },
      )
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), {code: 'TIMEOUT'})))
      req.on('error', (error) => resolve({error: error.code ?? error.message, reused: req.reusedSocket}))
      req.end(body)
    })
  // A reset on a reused keep-alive connection before any response is the race RFC 9112 9.3.1 tells
  // clients to handle by retrying an idempotent request once on a new connection (browsers, curl
  // and Go do; Node does not). Counted as a failure in the strict figure, retried once for the second figure.
  const once = async (method) => {
    const t = now() - started
    const first = await attempt(method)
    if (method === 'GET' && first.error && first.reused && /ECONNRESET|EPIPE|socket hang up/i.test(first.error)) {
      const retry = await attempt(method, true)
      return {t, method, done: now() - started, ...retry, firstError: `${first.error} on a reused connection`}
    }

    return {t, method, done: now() - started, ...first}
  }
  const lanes = Array.from({length: LANES}, async (_, index) => {
    let next = now() + (index * interval) / LANES
    for (let n = 1; !stopped && now() - started < MAX_LOAD_MS; n++) {
      const wait = next - now()
      if (wait > 0) await sleep(wait)
      next += interval
      results.push(await once(POST_EVERY > 0 && n % POST_EVERY === 0 ? 'POST' : 'GET'))
    }
  })
  return {
    started,
    results,
    async stop() {
      stopped = true
      await Promise.all(lanes)
      agent.destroy()
      return results
    },
  }
}

async function webContainers(project) {
  const list = await docker.listContainers({
    filters: {label: [`com.docker.compose.project=${project}`, 'com.docker.compose.service=web']},
  })
  return Promise.all(
    list.map(async (item) => {
      const info = await docker.getContainer(item.Id).inspect()
      return {
        id: item.Id,
        name: info.Name.slice(1),
        hostname: info.Config.Hostname,
        number: Number(info.Config.Labels['com.docker.compose.container-number']),
      }
    }),
  )
}

async function gatewayContainer(project) {
  const list = await docker.listContainers({
    all: true,
    filters: {label: [`com.docker.compose.project=${project}`, 'com.docker.compose.service=gateway']},
  })
  return list[0] ? {id: list[0].Id, name: list[0].Names[0].slice(1), state: list[0].State} : undefined
}

async function execIn(id, cmd) {
  try {
    const exec = await docker.getContainer(id).exec({Cmd: cmd, AttachStdout: true, AttachStderr: true})
    const stream = await exec.start({hijack: true, stdin: false})
    const chunks = []
    await new Promise((resolve) => {
      stream.on('data', (chunk) => chunks.push(chunk))
      stream.on('end', resolve)
      stream.on('close', resolve)
    })
    // Strip the 8-byte multiplexing headers.
    const raw = Buffer.concat(chunks)
    let text = ''
    for (let offset = 0; offset + 8 <= raw.length;) {
      const size = raw.readUInt32BE(offset + 4)
      text += raw.subarray(offset + 8, offset + 8 + size).toString('utf8')
      offset += 8 + size
    }

    return {exitCode: (await exec.inspect()).ExitCode, output: text.trim()}
  } catch (error) {
    return {exitCode: -1, output: error.json?.message ?? error.message}
  }
}

/**
 * One step under load: warm up, run `action`, then wait (bounded) until exactly `count` web
 * replicas run and the load has seen each of them answer and nothing else answer for 2 s.
 */
async function step(label, project, port, ca, count, action) {
  const load = startLoad({port, ca})
  await sleep(2_000)
  const t0 = now() - load.started
  const notes = []
  const commandMs = await action(notes)
  let servingMs
  let expected = []
  while (now() - load.started - t0 < CONVERGE_LIMIT_MS) {
    expected = await webContainers(project)
    const elapsed = now() - load.started
    const since = load.results.filter((result) => result.t >= t0)
    const firstSeen = expected.map((container) => since.find((result) => result.hostname === container.hostname)?.done)
    const recentOthers = since.filter(
      (result) =>
        result.done > elapsed - 2_000 &&
        result.hostname &&
        !expected.some((container) => container.hostname === result.hostname),
    )
    if (
      expected.length === count &&
      firstSeen.every((seen) => seen !== undefined) &&
      recentOthers.length === 0 &&
      elapsed - t0 > commandMs
    ) {
      const lastOther =
        since
          .filter((result) => result.hostname && !expected.some((container) => container.hostname === result.hostname))
          .at(-1)?.done ?? 0
      servingMs = Math.max(...firstSeen, lastOther) - t0
      break
    }

    await sleep(250)
  }

  await sleep(3_000)
  const results = (await load.stop()).filter((result) => result.t >= t0 - 2_000)
  const isFailure = (result) => Boolean(result.error) || result.status < 200 || result.status > 299
  const strict = results.filter((result) => isFailure(result) || result.firstError)
  const failed = results.filter(isFailure)
  const kinds = {}
  for (const result of strict) {
    const kind = `${result.method} ${result.firstError ?? result.error ?? `HTTP ${result.status}`}`
    kinds[kind] = (kinds[kind] ?? 0) + 1
  }

  const window = strict.length > 0 ? [(strict[0].t - t0) / 1000, (strict.at(-1).t - t0) / 1000] : undefined
  return {
    step: label,
    commandMs: Math.round(commandMs),
    servingMs: servingMs === undefined ? null : Math.round(servingMs),
    requests: results.length,
    failed: strict.length,
    failedAfterRetry: failed.length,
    kinds,
    failureWindowS: window?.map((value) => Number(value.toFixed(1))) ?? null,
    notes,
  }
}

function upstreamText(project, hosts, port = 8000) {
  return [
    "# Written by bench/scale.js, the seed guide's way: one server line per container name.",
    'upstream web_upstream {',
    '    zone web_upstream 64k;',
    ...hosts.map((host) => `    server ${host}:${port} max_fails=3 fail_timeout=10s;`),
    '    keepalive 16;',
    '    keepalive_timeout 4s;',
    '}',
    '',
  ].join('\n')
}

/** Wait (bounded) until the gateway container runs again: a recreated one may be restarting. */
async function gatewayRunning(project, limitMs = 60_000) {
  const started = now()
  while (now() - started < limitMs) {
    const gateway = await gatewayContainer(project)
    if (gateway?.state === 'running') return gateway
    await sleep(250)
  }

  return undefined
}

/**
 * The guide's way (section 8): Compose scales, then the upstream is edited by hand and NGINX reloaded.
 * The guide's own lines (web, web_1, web_2) are tried with `nginx -t` once the gateway runs; the file
 * that is reloaded lists the names Compose v1 really gives, <project>_web_N.
 */
async function seedScale(project, dir, count, notes, options = {}) {
  const started = now()
  const args = ['-p', project, 'up', '-d', ...(options.noRecreate ? ['--no-recreate'] : []), '--scale', `web=${count}`]
  const compose = await runCommand('docker', ['compose', ...args], {cwd: dir, timeoutMs: 300_000})
  const composeLines = `${compose.stdout}\n${compose.stderr}`
    .split('\n')
    .filter((line) => /done|error/i.test(line))
    .map((line) => line.replace(/\s+/g, ' ').trim())
  notes.push(
    `docker compose ${args.join(' ')}: exit ${compose.status} in ${(compose.ms / 1000).toFixed(1)} s; ${[...new Set(composeLines)].join('; ')}`,
  )
  const upstreams = join(dir, 'gateway/conf.d/upstreams.conf')
  const names = (await webContainers(project)).sort((a, b) => a.number - b.number).map((container) => container.name)
  const actual = upstreamText(project, names)
  writeFileSync(upstreams, actual)
  let gateway = await gatewayContainer(project)
  const test = gateway ? await execIn(gateway.id, ['nginx', '-t']) : {exitCode: -1, output: 'no gateway container'}
  const reload = gateway
    ? await execIn(gateway.id, ['nginx', '-s', 'reload'])
    : {exitCode: -1, output: 'no gateway container'}
  const first = (result) =>
    result.output.split('\n').find((line) => /emerg|failed|error|restarting/i.test(line)) ??
    result.output.split('\n')[0]
  notes.push(
    `upstream with Compose's names (${names.join(', ')}): nginx -t exit ${test.exitCode}, nginx -s reload exit ${reload.exitCode}${reload.exitCode === 0 ? '' : `: ${first(reload)}`}`,
  )
  const ms = now() - started
  if (options.checkLiteral) {
    gateway = await gatewayRunning(project)
    if (gateway) {
      // Only tested, never reloaded: the running configuration stays the one above.
      writeFileSync(upstreams, upstreamText(project, ['web', 'web_1', 'web_2'].slice(0, count)))
      const literal = await execIn(gateway.id, ['nginx', '-t'])
      writeFileSync(upstreams, actual)
      notes.push(
        `the guide's literal upstream (server web:8000; server web_1:8000; server web_2:8000): nginx -t exit ${literal.exitCode}: ${first(literal)}`,
      )
    } else {
      notes.push("the gateway did not run again within 60 s, so the guide's literal upstream could not be tested")
    }
  }

  return ms
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

  await runCommand('docker', ['compose', '-p', project, 'down', '--remove-orphans'], {
    cwd: dir,
    timeoutMs: 120_000,
  }).catch(() => {})
  await runCommand(process.execPath, [cli, 'down', '--dir', dir], {timeoutMs: 120_000}).catch(() => {})
  for (const container of await docker.listContainers({
    all: true,
    filters: {label: [`com.docker.compose.project=${project}`]},
  }))
    await docker
      .getContainer(container.Id)
      .remove({force: true})
      .catch(() => {})
  for (const network of await docker.listNetworks({filters: {label: [`com.docker.compose.project=${project}`]}}))
    await docker
      .getNetwork(network.Id)
      .remove()
      .catch(() => {})
  for (const image of await docker.listImages({filters: {label: [`com.docker.compose.project=${project}`]}}))
    await docker
      .getImage(image.Id)
      .remove({force: true})
      .catch(() => {})
  rmSync(workdir, {recursive: true, force: true})
}

try {
  await docker.ping()
  const [http, https] = await pickPorts()
  const offline = await docker
    .getImage('python:3.12-slim')
    .inspect()
    .then(
      () => false,
      () => true,
    )
  const images = offline
    ? ['--python-image', 'create-gateway-offline/python:forky', '--nginx-image', 'create-gateway-offline/nginx:forky']
    : []
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

  const ours = (count) => async (notes) => {
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
  const oursRedeploy = async (notes) => {
    codeChange('ours')
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
  }

  const freshStackOfTwo = async () => {
    await runCommand('docker', ['compose', '-p', project, 'down', '--remove-orphans'], {
      cwd: dir,
      timeoutMs: 120_000,
    }).catch(() => {})
    await runCommand(process.execPath, [cli, 'down', '--dir', dir], {timeoutMs: 120_000})
    writeFileSync(join(dir, 'gateway/conf.d/upstreams.conf'), upstreamText(project, ['web']))
    for (const args of [['up'], ['scale', 'web=2']]) {
      const result = await runCommand(process.execPath, [cli, ...args, '--dir', dir], {timeoutMs: 600_000})
      if (result.status !== 0) throw new Error(`${args.join(' ')} failed:\n${result.stderr}`)
    }
  }

  const compose = (await runCommand('docker', ['compose', 'version'], {timeoutMs: 30_000})).status === 0
  if (!compose)
    log('docker compose (Compose v2) is not installed (fixtures/compose/install-compose-v2.sh): only our own steps run')
  for (const [label, count, action, before] of [
    ['ours: scale web=3', 3, ours(3)],
    ['ours: scale web=1', 1, ours(1)],
    [
      'seed: compose --scale web=3 + upstream + reload',
      3,
      (notes) => seedScale(project, dir, 3, notes, {checkLiteral: true}),
    ],
    ['seed: compose --scale web=1 + upstream + reload', 1, (notes) => seedScale(project, dir, 1, notes)],
    // The same without the recreation Compose v1 does on a stack it did not create: the reload alone.
    [
      'seed: compose --no-recreate --scale web=3 + reload',
      3,
      (notes) => seedScale(project, dir, 3, notes, {noRecreate: true}),
    ],
    ['seed: compose --scale web=1 + upstream + reload', 1, (notes) => seedScale(project, dir, 1, notes)],
    // The redeploys start from a stack of ours again (the seed steps above left Compose's containers).
    ['ours: up after a code change (web=2, rolling)', 2, oursRedeploy, freshStackOfTwo],
    ['seed: compose up -d --build after a code change', 2, seedRedeploy, seedUpstream],
  ].filter(([label]) => compose || label.startsWith('ours'))) {
    if (interrupted) break
    if (before) await before()
    log(label)
    rows.push(await step(label, project, https, ca, count, action))
  }
} finally {
  await cleanup()
}

if (flags.json) {
  console.log(JSON.stringify({rate: RATE, lanes: LANES, postEvery: POST_EVERY, steps: rows}, null, 2))
} else {
  const seconds = (ms) => (ms === null ? 'never' : `${(ms / 1000).toFixed(1)} s`)
  console.log(
    `scale under load: ${RATE} requests/s on /api/ over ${LANES} keep-alive HTTPS connections (127.0.0.1)${POST_EVERY ? `, every ${POST_EVERY}th a POST` : ''}`,
  )
  console.log(
    [
      'step'.padEnd(50),
      'command'.padStart(9),
      'serving'.padStart(9),
      'requests'.padStart(9),
      'failed'.padStart(7),
      'retried'.padStart(8),
      '  failures',
    ].join(' '),
  )
  for (const row of rows) {
    const kinds = Object.entries(row.kinds)
      .map(([kind, count]) => `${count} ${kind}`)
      .join(', ')
    const window = row.failureWindowS ? ` at ${row.failureWindowS[0]}..${row.failureWindowS[1]} s` : ''
    console.log(
      [
        row.step.padEnd(50),
        seconds(row.commandMs).padStart(9),
        seconds(row.servingMs).padStart(9),
        String(row.requests).padStart(9),
        String(row.failed).padStart(7),
        String(row.failedAfterRetry).padStart(8),
        `  ${kinds}${window}`,
      ].join(' '),
    )
  }

  console.log(
    '\n"command": wall time of the command(s). "serving": until exactly the expected replicas answer (first answer of each, last answer of a leaving one).',
  )
  console.log(
    '"failed": requests that did not get a 2xx at the first attempt (non-2xx, refused, reset, timeout). "retried": still failed after one retry of a',
  )
  console.log(
    'GET reset on a reused keep-alive connection before any response, on a new connection (RFC 9112 9.3.1; what browsers, curl and Go do). POSTs are never retried.',
  )
  for (const row of rows) for (const note of row.notes) console.log(`  ${row.step}: ${note}`)
}
