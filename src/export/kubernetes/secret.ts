import type {ISecret} from 'kubernetes-models/v1/Secret'

import {posix} from 'node:path'

import {djangoServices, usesAuth} from '../../manifest/model.js'
import {GATEWAY_PATHS, PROJECT_PATHS} from '../../manifest/stack.js'
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

/** The gateway's secret files per auth mode: where the project keeps them, the name NGINX reads. */
export const GATEWAY_AUTH_FILES = [
  {mode: 'basic', source: PROJECT_PATHS.htpasswd, key: posix.basename(GATEWAY_PATHS.htpasswd)},
  {mode: 'api-key', source: PROJECT_PATHS.apiKeysMap, key: posix.basename(GATEWAY_PATHS.apiKeys)},
  {mode: 'jwt', source: PROJECT_PATHS.jwtSecretMap, key: posix.basename(GATEWAY_PATHS.jwtSecret)},
] as const

/** Files of /etc/nginx/secrets the routes use, by file name. */
export function gatewayAuthData(context: ExportContext): Record<string, string> {
  const data: Record<string, string> = {}
  for (const file of GATEWAY_AUTH_FILES) {
    const content = context.secrets.gatewayAuth[file.key]
    if (usesAuth(context.manifest, file.mode) && content !== undefined) data[file.key] = content
  }

  return data
}

/** tls.mode self-signed: the project's certificate (cert-manager fills the Secret under certbot). */
export function tlsData(context: ExportContext): Record<string, string> {
  const certificate = context.secrets.certificate
  return certificate && context.manifest.tls.mode === 'self-signed'
    ? {'tls.crt': certificate.chain, 'tls.key': certificate.key}
    : {}
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
