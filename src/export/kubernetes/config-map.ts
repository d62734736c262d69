import type {IConfigMap} from 'kubernetes-models/v1/ConfigMap'

import {GATEWAY_CONFIG_MAP, metadata, resourceFile, type ExportContext, type ResourceBuilder} from './model.js'

/** The prefix of the gateway's files in the project: gateway/nginx.conf -> nginx.conf. */
const GATEWAY_DIR = 'gateway/'

export interface ConfigMapItem {
  /** ConfigMap key: keys cannot hold "/", so conf.d/snippets/proxy.conf is conf.d_snippets_proxy.conf. */
  key: string
  /** Path under /etc/nginx. */
  path: string
  content: string
}

/** The gateway's NGINX files, as the same configuration runs on one host, rendered for the cluster. */
export function configMapItems(context: ExportContext): ConfigMapItem[] {
  return context.gatewayFiles.map((file) => {
    const path = file.path.startsWith(GATEWAY_DIR) ? file.path.slice(GATEWAY_DIR.length) : file.path
    return {key: path.replace(/\//g, '_'), path, content: String(file.content)}
  })
}

export const configMaps: ResourceBuilder = {
  kind: 'ConfigMap',
  build(context) {
    const document: IConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: metadata(context, GATEWAY_CONFIG_MAP, 'gateway'),
      data: Object.fromEntries(configMapItems(context).map((item) => [item.key, item.content])),
    }
    return [{file: resourceFile(GATEWAY_CONFIG_MAP, 'ConfigMap'), document}]
  },
}
