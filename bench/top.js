#!/usr/bin/env node
// `node bench/top.js [lines]` (after `npm run build`): figures, not assertions. Makes N lines (default
// 1,000,000) in the gateway's log format, then times what `top --once --json` does with them: parse
// every line, aggregate one snapshot over a window that holds every line. No engine, no network: the
// lines come from memory (bench/top-engine.js times reading them from the engine).
import {TopSession} from '../dist/top/session.js'

const count = Number(process.argv[2] ?? 1_000_000)
const routes = [
  ['/api/', 'web'],
  ['/admin/', 'admin'],
  ['/payment/', 'payment'],
]
const start = Date.parse('2026-01-01T00:00:00Z')
// One second of log per 1,000 lines, as a busy gateway would write it.
const spanMs = Math.ceil(count / 1000) * 1000

{
  const parts = []
  for (let index = 0; index < count; index += 1) {
    const [route, service] = routes[index % routes.length]
    const status = index % 50 === 0 ? 503 : index % 20 === 0 ? 401 : 200
    const seconds = ((index * 7919) % 1000) / 10000
    const proxied = status !== 503
    parts.push(
      JSON.stringify({
        time: new Date(start + Math.floor(index / 1000) * 1000).toISOString().replace('.000Z', '+00:00'),
        request_id: `r${index}`,
        remote_addr: `172.18.0.${index % 40}`,
        method: 'GET',
        uri: `${route}items/${index % 100}`,
        status,
        bytes: 310,
        request_time: seconds,
        upstream_addr: proxied ? `172.18.0.${100 + (index % 4)}:8000` : '',
        upstream_status: proxied ? String(status) : '',
        upstream_response_time: proxied ? (seconds * 0.9).toFixed(3) : '',
        host: 'api.localhost',
        user_agent: 'bench',
        route,
        service,
      }),
    )
  }

  const bytes = parts.reduce((sum, part) => sum + Buffer.byteLength(part) + 1, 0)
  const source = {description: 'memory', next: async () => parts.splice(0)}
  const session = new TopSession(source, {windowMs: spanMs + 1000, rateLimitStatus: 503})
  const began = process.hrtime.bigint()
  const cpuBefore = process.cpuUsage()
  const snapshot = await session.refresh(start + spanMs)
  const ms = Number(process.hrtime.bigint() - began) / 1e6
  // CPU time too: on a shared, loaded machine the wall time says more about the neighbours.
  const cpu = process.cpuUsage(cpuBefore)
  const cpuMs = (cpu.user + cpu.system) / 1000
  const rssMb = Math.round(process.memoryUsage().rss / 2 ** 20)
  if (snapshot.requests !== count) throw new Error(`snapshot counted ${snapshot.requests} of ${count} lines`)
  console.log(
    `top: ${count.toLocaleString('en')} lines (${(bytes / 2 ** 20).toFixed(0)} MiB) parsed and aggregated in ` +
      `${(ms / 1000).toFixed(2)} s wall, ${(cpuMs / 1000).toFixed(2)} s CPU (${Math.round(count / (cpuMs / 1000)).toLocaleString('en')} lines per CPU second), rss ${rssMb} MiB`,
  )
  console.log(
    `  /api/: ${snapshot.routes[0].requests} requests, p50/p95/p99 ${snapshot.routes[0].latency.p50}/${snapshot.routes[0].latency.p95}/${snapshot.routes[0].latency.p99} ms`,
  )
}
