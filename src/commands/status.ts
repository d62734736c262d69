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
    {description: 'JSON, for scripts', command: '<%= config.bin %> status --dir my-api --json'},
  ]

  static override flags = {
    dir: dirFlag,
    json: Flags.boolean({summary: 'Print the rows as JSON.'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parse(Status)
    const manifest = await loadManifest(flags.dir)
    const rows = await markUpstreamMembership(flags.dir, manifest, await stackStatus(manifest))
    if (flags.json) {
      this.log(JSON.stringify(rows, null, 2))
      return
    }

    this.log(describeStatus(manifest.name, rows))
    this.log(describeCertificateStatus(await certificateStatus(flags.dir, manifest)))
  }
}
