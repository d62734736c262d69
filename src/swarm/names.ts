import {createHash} from 'node:crypto'

/**
 * How a deployed stack is named and found on a swarm: the same labels and names `docker stack
 * deploy` uses, so `docker stack ps NS` and `docker stack rm NS` see what `create-gateway deploy` made.
 * The deployment is detected by these labels; nothing is recorded in gateway.yaml.
 */

export const STACK_NAMESPACE_LABEL = 'com.docker.stack.namespace'
/** The image a service was deployed from, as `docker stack deploy` records it. */
export const STACK_IMAGE_LABEL = 'com.docker.stack.image'
/** Which project file a config or secret holds (`gateway/conf.d/gateway.conf`). */
export const SOURCE_FILE_LABEL = 'dev.create-gateway.file'

export function stackLabels(namespace: string): Record<string, string> {
  return {[STACK_NAMESPACE_LABEL]: namespace}
}

/** `web` in stack `my-api` is the service `my-api_web`, as with `docker stack deploy`. */
export function serviceName(namespace: string, service: string): string {
  return `${namespace}_${service}`
}

/** The public overlay: the gateway's published ports (Compose's `default`). */
export function networkName(namespace: string): string {
  return `${namespace}_default`
}

/** The services' overlay, with no way out of the cluster (Compose's `internal`). */
export function internalNetworkName(namespace: string): string {
  return `${namespace}_internal`
}

export function sha256(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex')
}

/** Swarm caps config and secret names at 64 characters of [a-zA-Z0-9-_.]. */
const MAX_OBJECT_NAME = 64

/**
 * `<ns>_<file>-<sha10>`: configs and secrets are immutable, so the name carries the content's hash;
 * a changed file is a new object and the service update rolls onto it.
 */
export function objectName(namespace: string, file: string, content: string | Buffer): string {
  const hash = sha256(content).slice(0, 10)
  const slug = file.replace(/[^a-zA-Z0-9_.-]+/g, '_').replace(/^[_.-]+/, '')
  const room = MAX_OBJECT_NAME - namespace.length - hash.length - 2
  return `${namespace}_${slug.slice(Math.max(0, slug.length - room))}-${hash}`
}

/** `REGISTRY/<project>/<service>:<content-id12>`: the reference every node pulls. */
export function imageReference(registry: string, project: string, service: string, contentHash: string): string {
  return `${registry.replace(/\/+$/, '')}/${project}/${service}:${contentHash.slice(0, 12)}`
}
