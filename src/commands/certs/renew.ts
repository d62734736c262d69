import {Flags} from '@oclif/core'

import {DEFAULT_CERTBOT_TIMEOUT_MS} from '../../certs/certbot-container.js'
import {describeCertificateResult, renewCertificate} from '../../certs/certbot.js'
import {ProjectCommand} from '../base.js'
import {withProjectLock} from '../../util/lock.js'

export default class CertsRenew extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary =
    'Renew the certbot certificate when due (or now with --force); reload the gateway only if it changed.'
  static override description = `Runs \`certbot renew\` for the domain with the settings \`certs issue\` left in certbot/ (server, webroot, account). Certbot renews within 30 days of expiry; --force renews now. When the certificate changed it is installed into certs/, tested with nginx -t and the gateway reloaded; either way the command confirms over TLS that the gateway serves the certificate on disk.

Safe to run from cron twice a day; it exits 0 when nothing was due.`

  static override examples = [
    {description: 'From cron, twice a day', command: '<%= config.bin %> certs renew --dir /srv/my-api'},
    {description: 'Renew now', command: '<%= config.bin %> certs renew --force'},
  ]

  static override flags = {
    force: Flags.boolean({summary: 'Renew even when more than 30 days are left.'}),
    'ca-bundle': Flags.file({
      summary: "PEM file with the ACME server's CA certificate (default: the one `certs issue` kept).",
      exists: true,
    }),
    timeout: Flags.integer({summary: 'Seconds certbot may take.', default: DEFAULT_CERTBOT_TIMEOUT_MS / 1000, min: 1}),
  }

  async run() {
    const {flags} = await this.parse(CertsRenew)
    // One change to the project at a time: up, down, render, scale and the other certs commands wait.
    const result = await withProjectLock(flags.dir, {command: 'certs renew'}, () =>
      renewCertificate({
        dir: flags.dir,
        force: flags.force,
        caBundle: flags['ca-bundle'],
        timeoutMs: flags.timeout * 1000,
        onProgress: (message) => this.progress(message),
        onOutput: (line) => process.stderr.write(`  certbot | ${line}\n`),
      }),
    )
    this.log(describeCertificateResult(result))
    return result
  }
}
