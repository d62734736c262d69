import {Flags} from '@oclif/core'

import {describeDown} from '../docker/report.js'
import {downStack} from '../docker/stack.js'
import {loadManifest} from '../manifest/load.js'
import {withProjectLock} from '../util/lock.js'
import {findDeployedStack} from '../swarm/connect.js'
import {removeStack} from '../swarm/down.js'
import {BaseCommand, dirFlag} from './base.js'
import {hostFlag} from './deploy.js'

export default class Down extends BaseCommand {
  static override summary = "Stop and remove the project's containers and network; the files stay."
  static override description = `Finds everything by the project's Compose label, so it also removes what \`docker compose up\` started. The gateway stops first (NGINX finishes in-flight requests), then the Django replicas, each with its own stop signal and grace period.`

  static override examples = [
    {description: 'Stop the project in the current directory', command: '<%= config.bin %> down'},
    {
      description: 'Remove a stack deployed to a swarm (also found through DOCKER_HOST)',
      command: '<%= config.bin %> down --host tcp://127.0.0.1:2375',
    },
    {description: "Also remove the project's volumes", command: '<%= config.bin %> down --dir my-api --volumes'},
  ]

  static override flags = {
    dir: dirFlag,
    host: hostFlag,
    volumes: Flags.boolean({summary: 'Also remove the volumes labelled with the project.'}),
    json: Flags.boolean({summary: 'Print what was removed as JSON.'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Down)
    const manifest = await loadManifest(flags.dir)
    const onProgress = (message: string) => this.logToStderr(`- ${message}`)
    // Deployed to a swarm (found by the stack label): remove the stack as `docker stack rm` does.
    const swarm = await findDeployedStack(manifest.name, flags.host)
    if (swarm) {
      const removed = await withProjectLock(flags.dir, {command: 'down'}, () =>
        removeStack(swarm.docker, manifest.name, {onProgress}),
      )
      this.log(
        flags.json
          ? JSON.stringify(removed, null, 2)
          : `Removed stack ${removed.namespace} from ${swarm.endpoint}: ${removed.services.length} services, ${removed.objects.length} configs and secrets, ${removed.networks.length} network(s).`,
      )
      return
    }

    const result = await withProjectLock(flags.dir, {command: 'down'}, () =>
      downStack(manifest, {volumes: flags.volumes, onProgress}),
    )
    this.log(flags.json ? JSON.stringify(result, null, 2) : describeDown(result))
  }
}
