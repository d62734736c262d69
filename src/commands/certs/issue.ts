import {Flags} from '@oclif/core'

import {DEFAULT_CERTBOT_TIMEOUT_MS} from '../../certs/certbot-container.js'
import {describeCertificateResult, issueCertificate} from '../../certs/certbot.js'
import {ProjectCommand} from '../base.js'
import {withProjectLock} from '../../util/lock.js'

export default class CertsIssue extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary =
    "Get a certificate for the domain from Let's Encrypt (or another ACME CA) with certbot, install it and reload the gateway."
  static override description = `For tls.mode certbot. The gateway must be running (\`create-gateway up\`): certbot runs in a container on the project network and answers the HTTP-01 challenge through the gateway's port 80 (files in acme-webroot/). The certificate is copied from certbot/config/live/<domain>/ into certs/, NGINX tests and reloads its config, and the command confirms over TLS that the gateway serves the new certificate. Certbot's state (account, certificates, renewal config) stays in certbot/ for \`certs renew\`.

Running it again while the certificate is valid re-installs it without asking the CA. Test with --staging first: Let's Encrypt's production limits are low.`

  static override examples = [
    {
      description: 'Staging certificate first (untrusted, generous rate limits)',
      command: '<%= config.bin %> certs issue --staging',
    },
    {description: 'The real one', command: '<%= config.bin %> certs issue'},
    {
      description: 'A private or test ACME server (Pebble)',
      command: '<%= config.bin %> certs issue --server https://pebble:14000/dir --ca-bundle pebble.minica.pem',
    },
  ]

  static override flags = {
    staging: Flags.boolean({
      summary: "Use Let's Encrypt's staging server (certificates no browser trusts).",
      exclusive: ['server'],
    }),
    server: Flags.string({
      summary: "ACME directory URL (default: tls.acmeServer in gateway.yaml, else Let's Encrypt).",
      exclusive: ['staging'],
    }),
    'ca-bundle': Flags.file({
      summary:
        "PEM file with the ACME server's CA certificate, for a private or test CA; kept in certbot/ for renewals.",
      exists: true,
    }),
    timeout: Flags.integer({summary: 'Seconds certbot may take.', default: DEFAULT_CERTBOT_TIMEOUT_MS / 1000, min: 1}),
  }

  async run() {
    const {flags} = await this.parse(CertsIssue)
    // One change to the project at a time: up, down, render, scale and the other certs commands wait.
    const result = await withProjectLock(flags.dir, {command: 'certs issue'}, () =>
      issueCertificate({
        dir: flags.dir,
        server: flags.server,
        staging: flags.staging,
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
