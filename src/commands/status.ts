import {certificateStatus, describeCertificateStatus} from '../certs/certificate-status.js'
import {describeStatus} from '../docker/describe.js'
import {connectEngine} from '../docker/engine.js'
import {stackStatus} from '../docker/status.js'
import {markUpstreamMembership} from '../gateway/upstreams.js'
import {loadManifest} from '../manifest/load.js'
import {findDeployedStack} from '../swarm/connect.js'
import {describeSwarmStatus, swarmStatus} from '../swarm/status.js'
import {hostFlag, ProjectCommand} from './base.js'

export default class Status extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary = 'Show one row per container of the project: service, name, state, health, ports, image.'

  static override examples = [
    {description: 'Table', command: '<%= config.bin %> status'},
    {
      description:
        'JSON for scripts: {project, containers: [...], certificate: {mode, issuer, validTo, daysLeft, ...}}',
      command: '<%= config.bin %> status --dir my-api --json',
    },
    {
      description: 'A stack deployed to a swarm: tasks per node (also found through DOCKER_HOST)',
      command: '<%= config.bin %> status --host tcp://127.0.0.1:2375',
    },
    {
      description: 'Days left on the certificate, in a script',
      command: '<%= config.bin %> status --json | jq .certificate.daysLeft',
    },
  ]

  static override flags = {
    host: hostFlag,
  }

  async run() {
    const {flags} = await this.parse(Status)
    const manifest = await loadManifest(flags.dir)
    // Deployed to a swarm (found by the stack label on the manager at --host / DOCKER_HOST): its tasks.
    const swarm = await findDeployedStack(manifest.name, flags.host)
    if (swarm) {
      const status = await swarmStatus(swarm.docker, manifest.name, swarm.endpoint)
      this.log(describeSwarmStatus(status))
      return {project: manifest.name, swarm: status}
    }

    const engine = await connectEngine()
    const rows = await markUpstreamMembership(flags.dir, manifest, await stackStatus(manifest, {engine}), engine)
    const certificate = await certificateStatus(flags.dir, manifest)
    this.log(describeStatus(manifest.name, rows))
    this.log(describeCertificateStatus(certificate))
    return {project: manifest.name, containers: rows, certificate}
  }
}
