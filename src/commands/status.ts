import {Flags} from '@oclif/core'

import {certificateStatus, describeCertificateStatus} from '../certs/certbot.js'
import {describeStatus} from '../docker/report.js'
import {stackStatus} from '../docker/stack.js'
import {markUpstreamMembership} from '../gateway/upstreams.js'
import {loadManifest} from '../manifest/load.js'
import {BaseCommand, dirFlag} from './base.js'

export default class Status extends BaseCommand {
  static override summary = 'Show one row per container of the project: service, name, state, health, ports, image.'

  static override examples = [
    {description: 'Table', command: '<%= config.bin %> status'},
    {
      description:
        'JSON for scripts: {project, containers: [...], certificate: {mode, issuer, validTo, daysLeft, ...}}',
      command: '<%= config.bin %> status --dir my-api --json',
    },
    {
      description: 'Days left on the certificate, in a script',
      command: '<%= config.bin %> status --json | jq .certificate.daysLeft',
    },
  ]

  static override flags = {
    dir: dirFlag,
    json: Flags.boolean({summary: 'Print one JSON document: the project, its containers and its certificate.'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Status)
    const manifest = await loadManifest(flags.dir)
    const rows = await markUpstreamMembership(flags.dir, manifest, await stackStatus(manifest))
    const certificate = await certificateStatus(flags.dir, manifest)
    if (flags.json) {
      this.log(JSON.stringify({project: manifest.name, containers: rows, certificate}, null, 2))
      return
    }

    this.log(describeStatus(manifest.name, rows))
    this.log(describeCertificateStatus(certificate))
  }
}
