#!/usr/bin/env node
// The gateway's own cost, figures not assertions.
// `npm run build && node bench/gateway.js [--rounds 3] [--seconds 10] [--connections 20] [--json] [--keep]`
// (`npm run bench -- gateway` runs only this part; plain `npm run bench` runs it after the others).
//
// One generated project with one web replica, and three ways to reach the same Django view (/api/):
//   direct   Gunicorn itself over plain HTTP: a second container of the web service's image, with the
//            same settings and limits, published on 127.0.0.1 for the bench only;
//   gateway  our generated gateway over HTTPS (route / has no auth; its rate limit is raised so that
//            limit_req counts every request but refuses none);
//   seed     a container of the same NGINX image running the guide's nginx.conf (section 4), with the
//            same CPU and memory limits as ours, over HTTPS to the project's web container. Two changes
//            to the guide's text: its rate limit is raised like ours, and it sends X-Forwarded-Proto
//            (without it Django answers every request with a redirect to HTTPS).
// Each round measures the three in turn (the order rotates), with wrk (keep-alive, --latency for the
// p99) or, when wrk is not installed, autocannon. Printed: the medians over the rounds of requests/s and
// p99 latency, the proxy's and the app's CPU-seconds per 1000 requests (the containers' cgroup CPU time
// from the engine's stats, before and after each measurement), and the ratios.
// Traffic goes only to 127.0.0.1 (ports from 29000-29999); everything is removed at the end, even on
// failure, unless --keep.
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdirSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import {request as httpRequest} from 'node:http'
import {request as httpsRequest} from 'node:https'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parseArgs} from 'node:util'

import autocannon from 'autocannon'
import Docker from 'dockerode'

import {cli, log, median, mustRun, pickPorts, removeProject, runCommand, sleep, baseImageFlags} from './lib.js'

const {values: flags} = parseArgs({
  options: {
    rounds: {type: 'string', default: '3'},
    seconds: {type: 'string', default: '10'},
    connections: {type: 'string', default: '20'},
    json: {type: 'boolean', default: false},
    keep: {type: 'boolean', default: false},
  },
})
const ROUNDS = Math.min(9, Math.max(1, Number(flags.rounds) || 3))
const SECONDS = Math.min(60, Math.max(2, Number(flags.seconds) || 10))
const CONNECTIONS = Math.min(200, Math.max(1, Number(flags.connections) || 20))
const WARMUP_SECONDS = 3
// `localhost` resolves to 127.0.0.1 without DNS, so wrk sends it as SNI and Host like a real client
// sends its domain (the gateway refuses a handshake for any other name).
const DOMAIN = 'localhost'
// High enough that limit_req never refuses: the limiter still runs on every request.
const RATE = '100000r/s'
const BURST = 100000
const docker = new Docker()

/** One GET, its status (0 on a connection error or timeout). */
function status(target) {
  return new Promise((resolve) => {
    const url = new URL(target.url)
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest
    const req = request(
      {
        host: '127.0.0.1',
        port: url.port,
        path: url.pathname,
        headers: {host: url.host, ...target.headers},
        ...(url.protocol === 'https:' ? {servername: DOMAIN, ca: target.ca} : {}),
        timeout: 3000,
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode))
      },
    )
    req.on('error', () => resolve(0))
    req.on('timeout', () => req.destroy())
    req.end()
  })
}

async function untilStatus(target, expected, limitMs = 120_000) {
  const started = Date.now()
  let last = 0
  while (Date.now() - started < limitMs) {
    last = await status(target)
    if (last === expected) return
    await sleep(300)
  }

  throw new Error(`${target.name}: ${target.url} answered ${last || 'nothing'}, not ${expected}, within ${limitMs} ms`)
}

const wrkInstalled = spawnSync('wrk', ['--version'], {stdio: 'ignore'}).error === undefined

const UNITS = {us: 1e-3, ms: 1, s: 1000, m: 60_000}
/** wrk's durations (750.00us, 13.43ms, 1.02s, 1.00m) in milliseconds. */
function wrkMs(text) {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text)
  return match ? Number(match[1]) * UNITS[match[2]] : null
}

function parseWrk(output) {
  const number = (regex) => {
    const match = regex.exec(output)
    return match ? Number(match[1]) : 0
  }
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output)
  return {
    requests: number(/^\s*(\d+) requests in/m),
    rps: number(/^Requests\/sec:\s+([\d.]+)/m),
    p99Ms: wrkMs(/^\s*99%\s+(\S+)/m.exec(output)?.[1] ?? ''),
    p50Ms: wrkMs(/^\s*50%\s+(\S+)/m.exec(output)?.[1] ?? ''),
    // Non-2xx (wrk counts a 3xx as success, but the pre-check saw a 200) and socket errors.
    errors:
      number(/Non-2xx or 3xx responses: (\d+)/) + (socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0),
  }
}

/** One load of `seconds` on a target: keep-alive connections, as many requests as they get answered. */
async function load(target, seconds) {
  if (wrkInstalled) {
    const headers = Object.entries(target.headers ?? {}).flatMap(([name, value]) => ['-H', `${name}: ${value}`])
    const threads = String(Math.min(2, CONNECTIONS))
    const result = await runCommand(
      'wrk',
      [
        '-t',
        threads,
        '-c',
        String(CONNECTIONS),
        '-d',
        `${seconds}s`,
        '--timeout',
        '5s',
        '--latency',
        ...headers,
        target.url,
      ],
      {timeoutMs: (seconds + 30) * 1000},
    )
    if (result.status !== 0) throw new Error(`wrk failed on ${target.name}: ${result.stderr}`)
    return parseWrk(result.stdout)
  }

  const result = await autocannon({
    url: target.url,
    connections: CONNECTIONS,
    duration: seconds,
    headers: target.headers,
    servername: DOMAIN,
    timeout: 5,
  })
  return {
    requests: result.requests.total,
    rps: result.requests.average,
    p99Ms: result.latency.p99,
    p50Ms: result.latency.p50,
    errors: result.non2xx + result.errors + result.timeouts,
  }
}

/** The container's CPU time so far (cgroup cpuacct, through the engine's stats), in seconds. */
async function cpuSeconds(id) {
  const stats = await docker.getContainer(id).stats({stream: false, 'one-shot': true})
  return stats.cpu_stats.cpu_usage.total_usage / 1e9
}

/** The guide's nginx.conf (section 4), as printed, but for the two changes named at the top. */
function seedConfig() {
  return `# The guide's nginx.conf (api-gateway-guide.md, section 4), written by bench/gateway.js. Changed: the
# rate limit (raised like the generated gateway's for the bench) and X-Forwarded-Proto (Django
# redirects every request to HTTPS without it).
worker_processes auto;
events {
    worker_connections 1024;
}

http {
    # Logging
    access_log /var/log/nginx/access.log;
    error_log /var/log/nginx/error.log;

    # Rate Limiting
    limit_req_zone $binary_remote_addr zone=api_limit:10m rate=${RATE};

    upstream django_upstream {
        server web:8000;  # Django container
    }

    server {
        listen 80;
        server_name _;

        # Redirect all HTTP to HTTPS
        return 301 https://$host$request_uri;
    }

    server {
        listen 443 ssl;
        server_name _;

        # SSL Certificates
        ssl_certificate     /etc/ssl/certs/fullchain.pem;
        ssl_certificate_key /etc/ssl/certs/privkey.pem;

        location / {
            proxy_pass http://django_upstream;
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;

            # Apply rate limiting
            limit_req zone=api_limit burst=${BURST} nodelay;
        }

        # Example: Simple Auth Middleware
        location /secure/ {
            auth_basic "Restricted API";
            auth_basic_user_file /etc/nginx/.htpasswd;
            proxy_pass http://django_upstream;
        }
    }
}
`
}

async function composeContainer(project, service) {
  const [item] = await docker.listContainers({
    filters: {label: [`com.docker.compose.project=${project}`, `com.docker.compose.service=${service}`]},
  })
  if (!item) throw new Error(`no running ${service} container in ${project}`)
  return docker.getContainer(item.Id).inspect()
}

/** Gunicorn alone: the web service's image, environment, secrets and limits, published on 127.0.0.1. */
async function startDirect(web, port, label) {
  const container = await docker.createContainer({
    name: `${label.value}-direct`,
    Image: web.Config.Image,
    // Requests come from the host here, not from the gateway's network: believe their X-Forwarded-Proto.
    Env: [...web.Config.Env, 'GUNICORN_FORWARDED_ALLOW_IPS=*'],
    ExposedPorts: {'8000/tcp': {}},
    // The image Compose built carries the project's labels: blank them, so that nothing of the project's
    // (`down`, `scale`, the listing of web replicas) mistakes this container for one of its replicas.
    Labels: {[label.key]: label.value, 'com.docker.compose.project': '', 'com.docker.compose.service': ''},
    HostConfig: {
      NanoCpus: web.HostConfig.NanoCpus,
      Memory: web.HostConfig.Memory,
      ReadonlyRootfs: web.HostConfig.ReadonlyRootfs,
      Tmpfs: web.HostConfig.Tmpfs,
      CapDrop: web.HostConfig.CapDrop,
      SecurityOpt: web.HostConfig.SecurityOpt,
      Binds: web.HostConfig.Binds,
      Mounts: web.HostConfig.Mounts,
      PortBindings: {'8000/tcp': [{HostIp: '127.0.0.1', HostPort: String(port)}]},
    },
  })
  await container.start()
  return container.id
}

/** NGINX with the guide's config on the project's networks, with our gateway's limits. */
async function startSeed(gateway, dir, workdir, port, label) {
  const confDir = join(workdir, 'seed')
  mkdirSync(join(confDir, 'logs'), {recursive: true})
  writeFileSync(join(confDir, 'nginx.conf'), seedConfig())
  const networks = Object.keys(gateway.NetworkSettings.Networks)
  const internal = networks.find((name) => name.endsWith('_internal')) ?? networks[0]
  const container = await docker.createContainer({
    name: `${label.value}-seed`,
    Image: gateway.Config.Image,
    ExposedPorts: {'443/tcp': {}},
    Labels: {[label.key]: label.value},
    HostConfig: {
      NanoCpus: gateway.HostConfig.NanoCpus,
      Memory: gateway.HostConfig.Memory,
      // The guide's volumes: its nginx.conf, ./certs on /etc/ssl/certs, ./logs on /var/log/nginx.
      Binds: [
        `${join(confDir, 'nginx.conf')}:/etc/nginx/nginx.conf:ro`,
        `${join(dir, 'certs')}:/etc/ssl/certs:ro`,
        `${join(confDir, 'logs')}:/var/log/nginx`,
      ],
      PortBindings: {'443/tcp': [{HostIp: '127.0.0.1', HostPort: String(port)}]},
      NetworkMode: internal,
    },
  })
  // `web` must resolve when NGINX starts (internal network); the port is published through the other.
  for (const name of networks.filter((name) => name !== internal))
    await docker.getNetwork(name).connect({Container: container.id})
  await container.start()
  return container.id
}

const runId = `${Date.now().toString(36)}${randomBytes(2).toString('hex')}`
const project = `cgbench-gw-${runId}`
const label = {key: 'create-gateway.bench', value: project}
const workdir = mkdtempSync(join(tmpdir(), 'cg-bench-gw-'))
const dir = join(workdir, project)
const rounds = []
let targets = []

async function cleanup() {
  if (flags.keep) {
    log(`kept ${project} in ${dir} (containers labelled ${label.key}=${label.value})`)
    return
  }

  for (const container of await docker.listContainers({all: true, filters: {label: [`${label.key}=${label.value}`]}}))
    await docker
      .getContainer(container.Id)
      .remove({force: true})
      .catch(() => {})
  await removeProject(docker, project, dir, workdir)
}

let interrupted = false
process.once('SIGINT', () => {
  interrupted = true
  log('interrupted: finishing the current measurement, then cleaning up')
})

try {
  await docker.ping()
  const [http, https, directPort, seedPort] = await pickPorts(29_000, 4)
  const {flags: images, offline} = await baseImageFlags(docker)
  log(`init ${project} (one web replica, ${offline ? 'offline stand-in images' : 'official images'})`)
  await mustRun(process.execPath, [
    cli,
    'init',
    dir,
    '--yes',
    '--name',
    project,
    '--domain',
    DOMAIN,
    '--replicas',
    '1',
    '--rate',
    RATE,
    '--burst',
    String(BURST),
    '--http-port',
    String(http),
    '--https-port',
    String(https),
    ...images,
  ])
  log('up')
  await mustRun(process.execPath, [cli, 'up', '--dir', dir], {timeoutMs: 600_000})
  const web = await composeContainer(project, 'web')
  const gateway = await composeContainer(project, 'gateway')
  const ca = readFileSync(join(dir, 'certs', 'ca.pem'))
  log('starting the direct Gunicorn and the seed NGINX')
  const directId = await startDirect(web, directPort, label)
  const seedId = await startSeed(gateway, dir, workdir, seedPort, label)
  targets = [
    {
      name: 'direct',
      url: `http://${DOMAIN}:${directPort}/api/`,
      // What the gateway would add: Django redirects a request it believes is plain HTTP.
      headers: {'X-Forwarded-Proto': 'https'},
      proxy: undefined,
      app: directId,
    },
    {name: 'gateway', url: `https://${DOMAIN}:${https}/api/`, ca, proxy: gateway.Id, app: web.Id},
    {name: 'seed', url: `https://${DOMAIN}:${seedPort}/api/`, ca, proxy: seedId, app: web.Id},
  ]
  for (const target of targets) await untilStatus(target, 200)

  log(`warm-up: ${WARMUP_SECONDS} s on each`)
  for (const target of targets) await load(target, WARMUP_SECONDS)

  for (let round = 0; round < ROUNDS && !interrupted; round++) {
    const order = targets.map((_, index) => targets[(index + round) % targets.length])
    const results = {}
    for (const target of order) {
      const ids = [target.proxy, target.app].filter(Boolean)
      const before = await Promise.all(ids.map(cpuSeconds))
      const result = await load(target, SECONDS)
      const after = await Promise.all(ids.map(cpuSeconds))
      const perThousand = (index) =>
        index < 0 || result.requests === 0 ? null : ((after[index] - before[index]) * 1000) / result.requests
      results[target.name] = {
        ...result,
        proxyCpuPer1000: target.proxy ? perThousand(0) : null,
        appCpuPer1000: perThousand(ids.length - 1),
      }
      log(
        `round ${round + 1} ${target.name}: ${result.rps.toFixed(0)} req/s, p99 ${result.p99Ms?.toFixed(1)} ms, ${result.errors} errors`,
      )
    }

    rounds.push(results)
  }
} finally {
  await cleanup()
}

const summary = {}
for (const {name} of targets) {
  const of = (key) => median(rounds.map((round) => round[name]?.[key] ?? null))
  summary[name] = {
    rps: of('rps'),
    p99Ms: of('p99Ms'),
    p50Ms: of('p50Ms'),
    proxyCpuPer1000: of('proxyCpuPer1000'),
    appCpuPer1000: of('appCpuPer1000'),
    errors: rounds.reduce((sum, round) => sum + (round[name]?.errors ?? 0), 0),
  }
}

const ratio = (a, b) => (a === null || b === null || b === undefined || !b ? null : a / b)
const ratios = {
  gatewayVsDirect: ratio(summary.gateway?.rps ?? null, summary.direct?.rps),
  gatewayVsSeed: ratio(summary.gateway?.rps ?? null, summary.seed?.rps),
  seedVsDirect: ratio(summary.seed?.rps ?? null, summary.direct?.rps),
  p99GatewayVsSeed: ratio(summary.gateway?.p99Ms ?? null, summary.seed?.p99Ms),
}
const setup = {
  tool: wrkInstalled ? 'wrk' : 'autocannon',
  connections: CONNECTIONS,
  seconds: SECONDS,
  rounds: rounds.length,
  path: '/api/',
  replicas: 1,
}

if (flags.json) {
  console.log(JSON.stringify({setup, summary, ratios, rounds}, null, 2))
} else if (rounds.length > 0) {
  const fixed = (value, digits) => (value === null ? '-' : value.toFixed(digits))
  console.log(
    `gateway cost: ${setup.tool}, ${CONNECTIONS} keep-alive connections on /api/, one web replica, ${SECONDS} s each, median of ${rounds.length} rounds`,
  )
  console.log(
    [
      'path'.padEnd(9),
      'req/s'.padStart(8),
      'p50 ms'.padStart(8),
      'p99 ms'.padStart(8),
      'proxy CPU-s/1k'.padStart(15),
      'app CPU-s/1k'.padStart(13),
      'errors'.padStart(7),
    ].join(' '),
  )
  for (const [name, row] of Object.entries(summary))
    console.log(
      [
        name.padEnd(9),
        fixed(row.rps, 0).padStart(8),
        fixed(row.p50Ms, 1).padStart(8),
        fixed(row.p99Ms, 1).padStart(8),
        fixed(row.proxyCpuPer1000, 3).padStart(15),
        fixed(row.appCpuPer1000, 3).padStart(13),
        String(row.errors).padStart(7),
      ].join(' '),
    )
  console.log(
    `ratios: gateway/direct ${fixed(ratios.gatewayVsDirect, 2)} (goal >= 0.85), gateway/seed ${fixed(ratios.gatewayVsSeed, 2)} (goal >= 1.1), seed/direct ${fixed(ratios.seedVsDirect, 2)}; p99 gateway/seed ${fixed(ratios.p99GatewayVsSeed, 2)} (goal <= 1.0)`,
  )
  console.log(
    '"direct": Gunicorn over plain HTTP; "gateway": ours over HTTPS; "seed": the guide\'s nginx.conf over HTTPS. CPU: cgroup CPU time of the NGINX ("proxy") and Gunicorn ("app") containers per 1000 requests.',
  )
}

if (rounds.length === 0) process.exitCode = 1
