import {Flags} from '@oclif/core'

import {UsageError} from '../../errors.js'
import {describeExport} from '../../export/kubernetes/describe.js'
import {exportKubernetes} from '../../export/kubernetes/export.js'
import {DEFAULT_RESOLVER} from '../../export/kubernetes/model.js'
import {ProjectCommand} from '../base.js'

export default class ExportKubernetes extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary = 'Write the project as Kubernetes manifests (a kustomize folder) for `kubectl apply -k`.'
  static override description = `From gateway.yaml and the project's secrets: a Deployment, a headless Service, a PodDisruptionBudget and a NetworkPolicy (only the gateway may connect) per Django service; the gateway with the same NGINX configuration (a ConfigMap) resolving the services through the cluster's DNS, 2 replicas on different nodes, behind a LoadBalancer Service; Secrets for the keys, htpasswd, JWT key, Django's SECRET_KEY and the certificate (cert-manager for tls.mode certbot). Every pod runs as non-root on a read-only root file system. Running it again writes only what changed, and says which files did.`

  static override examples = [
    {
      description: 'Export into k8s/ and apply',
      command: '<%= config.bin %> export kubernetes --out k8s && kubectl apply -k k8s',
    },
    {
      description: 'Images from Amazon ECR, in namespace api',
      command:
        '<%= config.bin %> export kubernetes --out k8s --namespace api --registry 123456789012.dkr.ecr.eu-west-1.amazonaws.com',
    },
  ]

  static override flags = {
    out: Flags.directory({summary: 'Folder to write the manifests to (created if absent). Required.'}),
    namespace: Flags.string({summary: 'Namespace of the project (default: the project name).'}),
    registry: Flags.string({summary: 'Registry the Django images are pushed to, e.g. ghcr.io/acme.'}),
    resolver: Flags.string({summary: `DNS server the gateway asks at request time (default: ${DEFAULT_RESOLVER}).`}),
  }

  async run() {
    const {flags} = await this.parse(ExportKubernetes)
    // Checked here rather than by oclif, whose message for a missing flag spans three lines.
    if (!flags.out) throw new UsageError('--out: name the folder to write the manifests to, e.g. --out k8s')
    const result = await exportKubernetes(flags.dir, flags.out, {
      namespace: flags.namespace,
      registry: flags.registry,
      resolver: flags.resolver,
    })
    this.log(describeExport(result))
    return result
  }
}
