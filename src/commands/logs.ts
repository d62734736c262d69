import {Args, Flags} from '@oclif/core'

import {connectEngine} from '../docker/engine.js'
import {parseLogTime, showAccessLog, showLogs} from '../docker/logs.js'
import {UsageError} from '../errors.js'
import {loadManifest} from '../manifest/load.js'
import {findDeployedStack} from '../swarm/connect.js'
import {showSwarmLogs} from '../swarm/logs.js'
import {hostFlag, ProjectCommand} from './base.js'

export default class Logs extends ProjectCommand {
  static override summary = "Show container logs, or the gateway's access log as readable lines."
  static override description = `Without SERVICE, every container of the project, each line prefixed by the container's name. --access reads the gateway's access log (the JSON lines NGINX writes to its container's stdout; the engine keeps at most 3 x 10 MB per container) and prints time, status, method, URI, upstream, request time and request id; --tail counts access-log lines.`

  static override examples = [
    {description: 'The last 50 lines of every replica of web', command: '<%= config.bin %> logs web --tail 50'},
    {description: 'Follow the gateway', command: '<%= config.bin %> logs gateway --follow'},
    {
      description: 'A stack deployed to a swarm (found through --host or DOCKER_HOST): the service logs',
      command: '<%= config.bin %> logs gateway --tail 20 --host tcp://127.0.0.1:2375',
    },
    {description: 'Follow the access log', command: '<%= config.bin %> logs gateway --access --follow'},
    {description: 'The last ten minutes, with time stamps', command: '<%= config.bin %> logs web --since 10m -t'},
  ]

  static override args = {
    service: Args.string({
      description: 'A service of gateway.yaml (all its replicas), `gateway`, or a container name.',
    }),
  }

  static override flags = {
    host: hostFlag,
    follow: Flags.boolean({char: 'f', summary: 'Keep printing new lines until Ctrl-C.'}),
    tail: Flags.integer({char: 'n', summary: 'Only the last N lines of each container (default: all).', min: 0}),
    since: Flags.string({
      summary:
        'Only lines since a time: a duration back from now (10m, 1h30m, 2d), a date-time (2026-12-05T08:00:00Z), or Unix seconds.',
    }),
    until: Flags.string({summary: 'Only lines before a time, written as for --since.'}),
    timestamps: Flags.boolean({char: 't', summary: "Start each line with the engine's time stamp (RFC 3339)."}),
    access: Flags.boolean({
      summary: "Show only the gateway's access log, readably (JSON lines on the gateway's stdout).",
    }),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(Logs)
    const manifest = await loadManifest(flags.dir)
    const write = (line: string) => this.log(line)
    const since = flags.since === undefined ? undefined : parseLogTime(flags.since, 'since')
    const until = flags.until === undefined ? undefined : parseLogTime(flags.until, 'until')
    if (flags.access) {
      if (args.service && args.service !== 'gateway')
        throw new UsageError("--access is the gateway's access log: use `logs gateway --access`")
      if (flags.since || flags.until || flags.timestamps)
        throw new UsageError(
          '--since, --until and --timestamps read container output; the access log has a time on every line already',
        )
      await showAccessLog(await connectEngine(), manifest, {follow: flags.follow, tail: flags.tail, write})
      return
    }

    // Deployed to a swarm (found by the stack label): the services' logs through the manager.
    const swarm = await findDeployedStack(manifest.name, flags.host)
    if (swarm) {
      await showSwarmLogs(swarm.docker, manifest, {
        ...(args.service ? {service: args.service} : {}),
        follow: flags.follow,
        ...(flags.tail === undefined ? {} : {tail: flags.tail}),
        write,
      })
      return
    }

    const shown = await showLogs(await connectEngine(), manifest, {
      service: args.service,
      follow: flags.follow,
      tail: flags.tail,
      since,
      until,
      timestamps: flags.timestamps,
      write,
    })
    if (shown.lines === 0 && !flags.follow) this.logToStderr(`No output from ${shown.containers.join(', ')}.`)
  }
}
