import {Flags} from '@oclif/core'

import {describeDown} from '../docker/describe.js'
import {downStack} from '../docker/down.js'
import {loadManifest} from '../manifest/load.js'
import {withProjectLock} from '../util/lock.js'
import {findDeployedStack} from '../swarm/connect.js'
import {removeStack} from '../swarm/down.js'
import {hostFlag, ProjectCommand} from './base.js'

export default class Down extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary = "Stop and remove the project's containers and network; the files stay."
  static override description = `Finds everything by the project's Compose label, so it also removes what \`docker compose up\` started. The gateway stops first (NGINX finishes in-flight requests), then the Django replicas, each with its own stop signal and grace period.`

  static override examples = [
    {description: 'Stop the project in the current directory', command: '<%= config.bin %> down'},
    {
      description: 'Remove a stack deployed to a swarm (also found through DOCKER_HOST)',
      command: '<%= config.bin %> down --host tcp://127.0.0.1:2375',
    },
    {description: "Also remove the project's volumes", command: '<%= config.bin %> down --dir my-api --volumes'},
    {description: 'See what would be removed', command: '<%= config.bin %> down --dry-run'},
    {description: 'Give each container 30 s to stop', command: '<%= config.bin %> down --timeout 30'},
  ]

  static override flags = {
    host: hostFlag,
    volumes: Flags.boolean({char: 'v', summary: 'Also remove the volumes labelled with the project.'}),
    timeout: Flags.integer({
      char: 't',
      summary: "Seconds each container may take to stop before it is killed (default: its service's grace period).",
      min: 0,
    }),
    'dry-run': Flags.boolean({summary: 'List what would be stopped and removed; change nothing.'}),
  }

  async run() {
    const {flags} = await this.parse(Down)
    const manifest = await loadManifest(flags.dir)
    const onProgress = (message: string) => this.progress(message)
    // Deployed to a swarm (found by the stack label): remove the stack as `docker stack rm` does.
    const swarm = flags['dry-run'] ? undefined : await findDeployedStack(manifest.name, flags.host)
    if (swarm) {
      const removed = await withProjectLock(flags.dir, {command: 'down'}, () =>
        removeStack(swarm.docker, manifest.name, {onProgress}),
      )
      this.log(
        `Removed stack ${removed.namespace} from ${swarm.endpoint}: ${removed.services.length} services, ${removed.objects.length} configs and secrets, ${removed.networks.length} network(s).`,
      )
      return {project: manifest.name, swarm: removed}
    }

    const down = () =>
      downStack(manifest, {
        volumes: flags.volumes,
        timeoutSeconds: flags.timeout,
        dryRun: flags['dry-run'],
        onProgress,
      })
    const result = flags['dry-run'] ? await down() : await withProjectLock(flags.dir, {command: 'down'}, down)
    this.log(describeDown(result))
    return result
  }
}
