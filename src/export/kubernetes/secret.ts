import type {ISecret} from 'kubernetes-models/v1/Secret'

import {djangoServices} from '../../manifest/model.js'
import {
  djangoSecretName,
  GATEWAY_AUTH_SECRET,
  GATEWAY_TLS_SECRET,
  metadata,
  resourceFile,
  type ExportContext,
  type Resource,
  type ResourceBuilder,
} from './model.js'

/**
 * The project's secrets, and nothing else, as Secrets: the files the gateway reads (htpasswd, the API
 * key and JWT key maps, the certificate) and each Django service's SECRET_KEY. Values are the bytes
 * the project holds on disk, so both deployments accept the same credentials.
 */

function encode(values: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(values).map(([key, value]) => [key, Buffer.from(value).toString('base64')]))
}

/** Files of /etc/nginx/secrets the routes use, by file name. */
export function gatewayAuthData(context: ExportContext): Record<string, string> {
  return context.secrets.gatewayAuth
}

/** tls.mode self-signed: the project's certificate (cert-manager fills the Secret under certbot). */
export function tlsData(context: ExportContext): Record<string, string> {
  const certificate = context.secrets.certificate
  return certificate ? {'tls.crt': certificate.chain, 'tls.key': certificate.key} : {}
}

function secret(context: ExportContext, name: string, component: string, values: Record<string, string>, type: string) {
  const document: ISecret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: metadata(context, name, component),
    type,
    data: encode(values),
  }
  return {file: resourceFile(name, 'Secret'), document, secret: true} satisfies Resource
}

export const secrets: ResourceBuilder = {
  kind: 'Secret',
  build(context) {
    const resources: Resource[] = djangoServices(context.manifest).map((service) =>
      secret(
        context,
        djangoSecretName(service.name),
        'api',
        {DJANGO_SECRET_KEY: context.secrets.secretKeys[service.name] ?? ''},
        'Opaque',
      ),
    )
    const auth = gatewayAuthData(context)
    if (Object.keys(auth).length > 0) resources.push(secret(context, GATEWAY_AUTH_SECRET, 'gateway', auth, 'Opaque'))
    const tls = tlsData(context)
    if (Object.keys(tls).length > 0)
      resources.push(secret(context, GATEWAY_TLS_SECRET, 'gateway', tls, 'kubernetes.io/tls'))
    return resources
  },
}
