import {Flags} from '@oclif/core'
import {resolve} from 'node:path'

import {inspectCertificate} from '../../certs/inspect.js'
import {readInstalled, serveWhereRunning} from '../../certs/install.js'
import {issueProjectCertificates} from '../../certs/self-signed.js'
import {UsageError} from '../../errors.js'
import {loadManifest} from '../../manifest/load.js'
import {ProjectCommand} from '../base.js'
import {readFile} from 'node:fs/promises'
import {join} from 'node:path'
import {withProjectLock} from '../../util/lock.js'

export default class Certs extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary =
    'Regenerate the self-signed certificate (keeps the local CA) and reload a running gateway onto it.'
  static override description = `Signs a new certificate for the manifest's domain, localhost and 127.0.0.1 with the project's CA (certs/ca.pem; made if missing). When the gateway runs, it tests the configuration, reloads NGINX and confirms over TLS that the new certificate is served. (After changing the domain in gateway.yaml, \`render\` signs the new certificate and \`up\` brings the stack onto it.) For Let's Encrypt use \`certs issue\` and \`certs renew\`.`

  static override examples = [
    {description: 'New certificate for the project in the current directory', command: '<%= config.bin %> certs'},
    {description: 'For another project, as JSON', command: '<%= config.bin %> certs --dir ../my-api --json'},
  ]

  static override flags = {
    'dry-run': Flags.boolean({summary: 'Show what would be written, write nothing.'}),
  }

  async run() {
    const {flags} = await this.parse(Certs)
    const dir = resolve(flags.dir)
    const manifest = await loadManifest(dir)
    if (manifest.tls.mode === 'off')
      throw new UsageError('tls.mode is off in gateway.yaml: this project uses no certificate')
    if (flags['dry-run']) {
      const planned = await issueProjectCertificates(dir, manifest, {dryRun: true, force: true})
      this.log(`Dry run: would write ${planned.files.join(', ')}`)
      return {dryRun: true, files: planned.files}
    }

    // One change to the project at a time: up, down, render, scale and certs issue/renew wait.
    const {issued, facts, served} = await withProjectLock(dir, {command: 'certs'}, async () => {
      const previous = await readInstalled(dir)
      const issued = await issueProjectCertificates(dir, manifest, {force: true})
      const facts = inspectCertificate(await readFile(join(dir, 'certs', 'fullchain.pem'), 'utf8'))
      return {issued, facts, served: await serveWhereRunning(dir, manifest, previous)}
    })
    this.log(
      `Wrote ${issued.files.join(', ')} in ${issued.ms} ms (${issued.reusedCa ? 'kept the existing CA' : 'new CA: trust certs/ca.pem again'}).`,
    )
    this.log(`Certificate for ${facts.sans.join(', ')}, valid until ${facts.validTo.toISOString().slice(0, 10)}.`)
    if (served.served) this.log(`${served.gateway} serves it now (nginx -t, reload, fingerprint confirmed over TLS).`)
    else if (served.why === 'not-running') this.log('The stack is not running: `create-gateway up` serves it.')
    else
      this.log(
        'The Docker engine could not be reached, so no gateway was reloaded: if the stack runs, run `create-gateway certs` again once the engine answers.',
      )
    return {files: issued.files, reusedCa: issued.reusedCa, ms: issued.ms, certificate: facts, served}
  }
}
