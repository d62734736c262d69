import {Flags} from '@oclif/core'

import {loadManifest} from '../manifest/load.js'
import {DEFAULT_DEPLOY_TIMEOUT_MS, deployStack} from '../swarm/deploy.js'
import {describeSwarmStatus, swarmStatus} from '../swarm/status.js'
import {connectSwarm} from '../swarm/connect.js'
import {withProjectLock} from '../util/lock.js'
import {hostFlag, ProjectCommand} from './base.js'

export default class Deploy extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary = 'Deploy the project to a Docker Swarm as one stack (DOCKER_HOST or --host: a manager).'
  static override description = `Builds the service images on the manager, pushes them to --registry, and creates or updates the stack named after the project: an overlay network, Swarm configs (NGINX files) and secrets (certificates, keys, htpasswd, Django's secret key) with content-hashed names, the Django services (DNS round-robin, healthchecks, start-first updates that roll back on failure) and the gateway (on the manager, or on nodes labelled edge=true, ports 80/443 published in host mode). Everything carries com.docker.stack.namespace, so \`docker stack ps\` and \`docker stack rm\` see it; \`status\`, and \`down\` find it by that label. Waits until every service runs its replicas healthy; a first deploy that fails is removed again.`

  static override examples = [
    {
      description: 'A local 3-node swarm (fixtures/swarm/cluster.sh), then deploy',
      command: 'eval "$(fixtures/swarm/cluster.sh up)"\n<%= config.bin %> deploy --dir my-api --registry "$REGISTRY"',
    },
    {
      description: 'A manager elsewhere',
      command: '<%= config.bin %> deploy --host tcp://10.0.0.5:2375 --registry 10.0.0.5:5000',
    },
  ]

  static override flags = {
    host: hostFlag,
    registry: Flags.string({summary: 'Registry every node pulls from (HOST:PORT).', env: 'REGISTRY'}),
    timeout: Flags.integer({
      summary: 'Seconds to wait for every service to run its replicas healthy.',
      default: DEFAULT_DEPLOY_TIMEOUT_MS / 1000,
      min: 1,
    }),
  }

  async run() {
    const {flags} = await this.parse(Deploy)
    const manifest = await loadManifest(flags.dir)
    const result = await this.interruptible(
      (signal) =>
        withProjectLock(flags.dir, {command: 'deploy'}, () =>
          deployStack(flags.dir, manifest, {
            ...(flags.host ? {host: flags.host} : {}),
            ...(flags.registry ? {registry: flags.registry} : {}),
            timeoutMs: flags.timeout * 1000,
            onProgress: (line) => this.progress(line),
            signal,
          }),
        ),
      `Interrupted again: stack ${manifest.name} may be half deployed; \`create-gateway down\` with the same DOCKER_HOST removes it.`,
    )
    if (!this.jsonEnabled()) {
      const {docker} = await connectSwarm(flags.host)
      this.log(`Deployed ${result.namespace} to ${result.endpoint}.`)
      this.log(describeSwarmStatus(await swarmStatus(docker, result.namespace, result.endpoint)))
    }

    return result
  }
}
