import {Flags} from '@oclif/core'

import {describeRerender, rerenderProject} from '../project/rerender.js'
import {loadManifest} from '../manifest/load.js'
import {withProjectLock} from '../util/lock.js'
import {ProjectCommand} from './base.js'

export default class Render extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary =
    'Render the project again from gateway.yaml after you edit it, and reload a running gateway onto it.'
  static override description = `Writes every generated file that no longer matches gateway.yaml: the NGINX configuration, docker-compose.yml, .env, the secret files a new auth mode needs, the project README, a new Django service's folder, and a certificate when the domain changed. What is yours stays: gateway.yaml itself, your Django code, your own .env variables, the secrets and the CA, and the replicas \`scale\` listed. When the gateway runs and only its configuration changed, it runs \`nginx -t\` in it and reloads it (confirmed); if either fails, the files are put back and the gateway keeps serving. Container changes (docker-compose.yml, .env) are applied by \`up\`, which also loads the gateway's new configuration then.`

  static override examples = [
    {description: 'After editing gateway.yaml (a route, a rate limit, auth)', command: '<%= config.bin %> render'},
    {description: 'See what would change, write nothing', command: '<%= config.bin %> render --dry-run'},
    {description: 'Another project, machine-readable', command: '<%= config.bin %> render --dir my-api --json'},
  ]

  static override flags = {
    'dry-run': Flags.boolean({summary: 'List the files that would change; write nothing, reload nothing.'}),
  }

  async run() {
    const {flags} = await this.parse(Render)
    const manifest = await loadManifest(flags.dir)
    const render = () =>
      rerenderProject(flags.dir, manifest, {
        dryRun: flags['dry-run'],
        onProgress: (message) => this.progress(message),
      })
    const result = flags['dry-run'] ? await render() : await withProjectLock(flags.dir, {command: 'render'}, render)
    this.log(describeRerender(result))
    return result
  }
}
