import type {ICertificate} from '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate'
import type {IIssuer} from '@kubernetes-models/cert-manager/cert-manager.io/v1/Issuer'

import {chooseAcmeServer} from '../../certs/certbot-rules.js'
import {
  ACME_SOLVER,
  GATEWAY,
  GATEWAY_TLS_SECRET,
  labels,
  metadata,
  resourceFile,
  type ResourceBuilder,
} from './model.js'

const ISSUER = 'letsencrypt'

/**
 * tls.mode certbot in a cluster: cert-manager (installed by the cluster's owner) does what `certs
 * issue` and `certs renew` do on one host. HTTP-01 goes through the gateway, as there: the gateway
 * passes /.well-known/acme-challenge/ to the solver pods, which the Issuer labels so that the
 * acme-http-solver Service finds them. The Ingress cert-manager also creates for each challenge names
 * an ingress class no controller serves, so it stays inert; no ingress controller is needed.
 */
export const certManager: ResourceBuilder = {
  kind: 'cert-manager',
  build(context) {
    const {manifest} = context
    if (manifest.tls.mode !== 'certbot') return []
    const issuer: IIssuer = {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Issuer',
      metadata: metadata(context, ISSUER, 'gateway'),
      spec: {
        acme: {
          server: chooseAcmeServer(manifest),
          ...(manifest.tls.email ? {email: manifest.tls.email} : {}),
          privateKeySecretRef: {name: `${ISSUER}-account-key`},
          solvers: [
            {
              http01: {
                ingress: {
                  class: `${manifest.name}-acme-unserved`,
                  serviceType: 'ClusterIP',
                  podTemplate: {metadata: {labels: labels(context, ACME_SOLVER, 'acme-solver')}},
                },
              },
            },
          ],
        },
      },
    }
    const certificate: ICertificate = {
      apiVersion: 'cert-manager.io/v1',
      kind: 'Certificate',
      metadata: metadata(context, GATEWAY, 'gateway'),
      spec: {
        secretName: GATEWAY_TLS_SECRET,
        dnsNames: [manifest.domain],
        issuerRef: {name: ISSUER, kind: 'Issuer'},
        // certbot's defaults, as on one host: ECDSA P-256, renewed 30 days before expiry.
        privateKey: {algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always'},
        renewBefore: '720h',
        secretTemplate: {labels: labels(context, GATEWAY_TLS_SECRET, 'gateway')},
      },
    }
    return [
      {file: resourceFile(ISSUER, 'Issuer'), document: issuer},
      {file: resourceFile(GATEWAY, 'Certificate'), document: certificate},
    ]
  },
}
