import {Flags} from '@oclif/core'

import {describeDown} from '../docker/report.js'
import {downStack} from '../docker/stack.js'
import {loadManifest} from '../manifest/load.js'
import {withProjectLock} from '../util/lock.js'
import {ProjectCommand} from './base.js'

export default class Down extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary = "Stop and remove the project's containers and network; the files stay."
  static override description = `Finds everything by the project's Compose label, so it also removes what \`docker compose up\` started. The gateway stops first (NGINX finishes in-flight requests), then the Django replicas, each with its own stop signal and grace period.`

  static override examples = [
    {description: 'Stop the project in the current directory', command: '<%= config.bin %> down'},
    {description: "Also remove the project's volumes", command: '<%= config.bin %> down --dir my-api --volumes'},
  ]

  static override flags = {
    volumes: Flags.boolean({summary: 'Also remove the volumes labelled with the project.'}),
  }

  async run() {
    const {flags} = await this.parse(Down)
    const manifest = await loadManifest(flags.dir)
    const result = await withProjectLock(flags.dir, {command: 'down'}, () =>
      downStack(manifest, {volumes: flags.volumes, onProgress: (message) => this.progress(message)}),
    )
    this.log(describeDown(result))
    return result
  }
}
