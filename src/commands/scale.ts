import {Flags} from '@oclif/core'

import {DEFAULT_HEALTH_TIMEOUT_MS, describeScale, scaleServices} from '../gateway/scale.js'
import {describePlannedScale, planScale} from '../gateway/scale-plan.js'
import {parseScaleTargets} from '../gateway/targets.js'
import {loadManifest} from '../manifest/load.js'
import {MAX_REPLICAS} from '../manifest/schema.js'
import {saveReplicaCounts} from '../gateway/replica-counts.js'
import {findDeployedStack} from '../swarm/connect.js'
import {describeProgress} from '../swarm/converge.js'
import {scaleSwarmServices} from '../swarm/scale.js'
import {hostFlag, ProjectCommand} from './base.js'

export default class Scale extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary =
    'Set the number of replicas of Django services and update the NGINX upstream without dropping requests.'
  static override description = `On NGINX 1.27.3 and later (upstreams.conf says \`server web:8000 resolve\`), NGINX is never reloaded: NGINX follows Docker's DNS for the service name. Scale up: starts the new replicas (same labels, names and configuration as \`up\`) without the service name, waits until they are healthy, gives them the name and waits until the gateway's DNS answer holds them. Scale down: the leaving replicas lose the name first, the gateway's DNS answer drops them, NGINX's cached answer and idle connections run out (about 6 s), then they get SIGTERM (Gunicorn's graceful shutdown), highest number first.

On older NGINX (upstreams.conf lists replicas by container name): scale up lists the new replicas in upstreams.conf, runs \`nginx -t\` in the gateway and reloads NGINX gracefully, then confirms the reload (new worker processes, no [emerg]/[alert] in the error log, the gateway's stderr); scale down takes them out the same way, lets the old NGINX workers finish their requests, then stops them.

If a step fails, the gateway keeps serving what it served (upstreams.conf restored, or the service name given back), the replicas this run created are removed, the gateway keeps serving, and the command exits 1 with the reason. The new count is saved in gateway.yaml once the gateway serves it, so \`up\` after \`down\` starts the same number. At most ${MAX_REPLICAS} replicas per service. One scale at a time per project: another one fails with "the project is busy", or waits with --wait-lock SECONDS.

The stack must be running; to set the count for the next \`up\` instead, use --manifest-only.`

  static override examples = [
    {description: 'Three replicas of web', command: '<%= config.bin %> scale web=3'},
    {
      description: 'Two services at once, in another directory',
      command: '<%= config.bin %> scale web=2 student-api=3 --dir my-api',
    },
    {
      description: 'A stack deployed to a swarm (found through --host or DOCKER_HOST): the service replicas',
      command: '<%= config.bin %> scale web=4 --host tcp://127.0.0.1:2375',
    },
    {
      description: 'Queue behind a scale that is already running',
      command: '<%= config.bin %> scale web=1 --wait-lock 120',
    },
    {
      description: 'Set the count before `up`, with the stack down',
      command: '<%= config.bin %> scale web=4 --manifest-only',
    },
  ]

  static override usage =
    '<%= command.id %> SERVICE=COUNT [SERVICE=COUNT ...] [-d <value>] [--json] [--timeout <value>] [--wait-lock <value>] [--dry-run] [--manifest-only]'
  static override strict = false
  static override args = {}

  static override flags = {
    host: hostFlag,
    timeout: Flags.integer({
      summary: 'Seconds new replicas may take to become healthy.',
      default: DEFAULT_HEALTH_TIMEOUT_MS / 1000,
      min: 1,
    }),
    'wait-lock': Flags.integer({
      summary: 'Seconds to wait while another command holds the project (default: fail at once).',
      default: 0,
      min: 0,
    }),
    // Compose's --wait ("until healthy") is what scale always does; accepted so the habit works.
    wait: Flags.boolean({
      summary: 'Wait until the new replicas are healthy, as `docker compose up --wait`: always done, see --timeout.',
      hidden: true,
    }),
    'dry-run': Flags.boolean({
      summary: 'List the replicas that would start and stop; change nothing.',
      exclusive: ['manifest-only'],
    }),
    'manifest-only': Flags.boolean({
      summary: 'Only save the counts in gateway.yaml and upstreams.conf for the next `up`; the stack must be down.',
    }),
  }

  async run() {
    const {argv, flags} = await this.parse(Scale)
    const manifest = await loadManifest(flags.dir)
    const targets = parseScaleTargets(argv as string[], manifest)
    if (flags['dry-run']) {
      const plan = await planScale(manifest, targets)
      this.log(describePlannedScale(plan))
      return plan
    }

    // Deployed to a swarm (found by the stack label): Swarm sets the tasks, the gateway finds them by DNS.
    const swarm = flags['manifest-only'] ? undefined : await findDeployedStack(manifest.name, flags.host)
    if (swarm) {
      const services = await scaleSwarmServices(swarm.docker, manifest.name, targets, {
        timeoutMs: flags.timeout * 1000,
        onProgress: (message) => this.progress(message),
      })
      await saveReplicaCounts(flags.dir, targets)
      this.log(services.map(describeProgress).join('\n'))
      return {project: manifest.name, swarm: services}
    }

    const result = await scaleServices(flags.dir, manifest, targets, {
      healthTimeoutMs: flags.timeout * 1000,
      lockWaitMs: flags['wait-lock'] * 1000,
      manifestOnly: flags['manifest-only'],
      onProgress: (message) => this.progress(message),
    })
    this.log(describeScale(result))
    return result
  }
}
