import {Flags} from '@oclif/core'

import {renderPanels} from '../top/panels.js'
import {DEFAULT_WINDOW, openTop} from '../top/run.js'
import {runLive} from '../top/session.js'
import {systemClock} from '../util/retry.js'
import {hostFlag, ProjectCommand} from './base.js'

export default class Top extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary = "A live view of the gateway's traffic from its access log, refreshed every second."
  static override description = `Per route and per upstream replica: requests, requests/s, status classes (2xx, 3xx, 4xx, 5xx and the rate-limit status), latency p50/p95/p99 in ms of request_time and upstream_response_time, cache hit ratio when the log has a cache status; then the busiest clients. Reads the JSON access log NGINX writes to the gateway's stdout (through the engine) over a sliding window.

Which stack: a stack deployed to a swarm (\`deploy\`; found by its stack label on the manager at --host, else DOCKER_HOST) when there is one, through the gateway service's log (\`docker service logs\`, every gateway task's); otherwise the stack \`up\` started, through the gateway container's log. When both exist the swarm stack is read, as \`status\`, \`logs\` and \`verify\` do: to read the \`up\` stack, run top without --host and with DOCKER_HOST pointing at its engine (unset for the local one).`

  static override examples = [
    {description: 'Watch the gateway (Ctrl-C to quit)', command: '<%= config.bin %> top --dir my-api'},
    {
      description: 'One JSON snapshot of the last 5 minutes',
      command: '<%= config.bin %> top --once --json --window 5m',
    },
    {
      description: 'A stack deployed to a swarm (found through --host or DOCKER_HOST): the gateway service',
      command: '<%= config.bin %> top --host tcp://127.0.0.1:2375',
    },
  ]

  static override flags = {
    host: hostFlag,
    window: Flags.string({summary: 'The sliding window: 60s, 5m, 1h.', default: DEFAULT_WINDOW}),
    once: Flags.boolean({summary: 'Print one snapshot and exit.'}),
    // oclif's --json, narrowed: a live view has no single document to print.
    json: Flags.boolean({
      summary: 'With --once: {window, requests, routes: [...], upstreams: [...], clients: [...]}.',
      dependsOn: ['once'],
      helpGroup: 'GLOBAL',
    }),
  }

  async run() {
    const {flags} = await this.parse(Top)
    const {session, source, rateLimitStatus} = await openTop({
      dir: flags.dir,
      window: flags.window,
      ...(flags.host ? {host: flags.host} : {}),
    })
    const render = (snapshot: Awaited<ReturnType<typeof session.refresh>>) =>
      renderPanels(snapshot, {source: source.description, rateLimitStatus})
    if (flags.once) {
      const snapshot = await session.refresh(systemClock.now())
      source.close?.()
      this.log(render(snapshot))
      return snapshot
    }

    const controller = new AbortController()
    process.once('SIGINT', () => controller.abort())
    // Cursor home, each line cleared to its end, then the rest of the screen: no flicker on a refresh.
    const show = (snapshot: Parameters<typeof render>[0]) =>
      process.stdout.write(`\u001B[H${render(snapshot).replaceAll('\n', '\u001B[K\n')}\u001B[K\n\u001B[J`)
    process.stdout.write('\u001B[2J')
    try {
      await runLive(session, {clock: systemClock, intervalMs: 1000, signal: controller.signal, show})
    } finally {
      source.close?.()
    }
  }
}
