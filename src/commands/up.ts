import {Flags} from '@oclif/core'

import {loadManifest} from '../manifest/load.js'
import {describeUp, describeUpPlan} from '../docker/describe.js'
import {DEFAULT_UP_TIMEOUT_MS, upStack} from '../docker/up.js'
import {planUp} from '../docker/up-plan.js'
import {applyPendingReload, upLoadedGatewayFiles} from '../project/rerender.js'
import {rollOutReplicas} from '../gateway/rollout.js'
import {fitUpstreamsToNginx} from '../gateway/upstream-form.js'
import {withProjectLock} from '../util/lock.js'
import {ProjectCommand} from './base.js'

export default class Up extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary = 'Build the service images and start the stack; wait until every container is healthy.'
  static override description = `Builds each Django service's image (skipped when its folder has not changed), creates the project network and the containers (the Django replicas, then the gateway) with Compose's labels, and waits for their healthchecks. Running it again changes only what differs from gateway.yaml; while the gateway runs, changed Django replicas are replaced one at a time behind it (an extra replica on the new configuration serves meanwhile), so the service keeps answering. If anything fails, it removes what this run created, shows the last log lines of the container that failed, and exits 1. Ctrl-C (or SIGTERM) stops it the same way and exits 130 (143); an image build already running finishes first.`

  static override examples = [
    {description: 'Start the project in the current directory', command: '<%= config.bin %> up'},
    {
      description: 'Another directory, with more time for slow machines',
      command: '<%= config.bin %> up --dir my-api --timeout 300',
    },
    {description: 'Machine-readable result', command: '<%= config.bin %> up --json'},
    {description: 'See what up would build, create, recreate or remove', command: '<%= config.bin %> up --dry-run'},
  ]

  static override flags = {
    timeout: Flags.integer({
      summary: 'Seconds to wait for the containers of each start step to become healthy.',
      default: DEFAULT_UP_TIMEOUT_MS / 1000,
      min: 1,
    }),
    'dry-run': Flags.boolean({
      summary:
        'List the images up would build or pull and the containers it would create, recreate, start or remove; change nothing.',
    }),
  }

  async run() {
    const {flags} = await this.parse(Up)
    const manifest = await loadManifest(flags.dir)
    if (flags['dry-run']) {
      // Reads only: no lock, so it also answers while another command changes the project.
      const plan = await planUp(flags.dir, manifest)
      this.log(describeUpPlan(plan))
      return plan
    }

    const down = flags.dir === '.' ? 'create-gateway down' : `create-gateway down --dir ${flags.dir}`
    const result = await this.interruptible(
      (signal) =>
        withProjectLock(flags.dir, {command: 'up'}, async () => {
          const onProgress = (message: string) => this.progress(message)
          const up = await upStack(flags.dir, manifest, {
            timeoutMs: flags.timeout * 1000,
            onProgress,
            signal,
            rollout: rollOutReplicas,
            fitUpstreams: (engine, image) => fitUpstreamsToNginx(engine, flags.dir, manifest, image),
          })
          return {
            ...up,
            pendingReload: await applyPendingReload(flags.dir, manifest, upLoadedGatewayFiles(up), {onProgress}),
          }
        }),
      `Interrupted again: quit before removing everything; containers and the network of ${manifest.name} that this run created may be left: \`${down}\` removes them.`,
    )
    this.log(describeUp(result))
    if (result.pendingReload.reload)
      this.log(
        `Gateway: loaded the configuration \`render\` wrote (nginx -t, reloaded in ${result.pendingReload.reload.ms} ms).`,
      )
    return result
  }
}
