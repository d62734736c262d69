import type Docker from 'dockerode'

import {memoryBytes} from '../manifest/grammar.js'
import type {RuntimeSpec, StackServiceSpec} from '../manifest/stack.js'

/**
 * The locked-down runtime of the compose stack (src/manifest/stack.ts), as Swarm spells it: read-only
 * root, capabilities dropped (CapabilityDrop/Add: engine >= 20.10), tmpfs mounts, bounded json-file
 * logs, CPU and memory limits. One thing has no Swarm form on engines before 27 (API 1.46): the
 * no-new-privileges security option; the task's processes still run with every capability dropped
 * (Django) or only NGINX's five (the gateway).
 */

const TMPFS = /^(\/[^:]*)(?::size=(\d+)([kmg]?))?$/
const UNIT = {'': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3} as const

/** Compose's short tmpfs form (`/tmp:size=64m`, `/var/cache/gateway:size=83886080`) as a Swarm mount. */
export function tmpfsMount(entry: string): Docker.MountSettings {
  const match = TMPFS.exec(entry)
  if (!match) throw new Error(`tmpfs ${entry}: expected PATH or PATH:size=N[kmg]`)
  const size = match[2] === undefined ? undefined : Number(match[2]) * UNIT[(match[3] ?? '') as keyof typeof UNIT]
  // Mode 1777 as Compose's short form gives: the gateway's NGINX workers write the cache as `nginx`.
  return {Type: 'tmpfs', Source: '', Target: match[1]!, TmpfsOptions: {SizeBytes: size ?? 0, Mode: 0o1777}}
}

/** The container part: read-only root, capabilities, tmpfs mounts (the gateway's cache among them). */
export function lockedDownContainer(spec: StackServiceSpec): Partial<Docker.ContainerSpec> {
  const runtime: RuntimeSpec = spec.runtime
  return {
    ReadOnly: runtime.readOnly,
    CapabilityDrop: runtime.capDrop.map(capability),
    ...(runtime.capAdd.length > 0 ? {CapabilityAdd: runtime.capAdd.map(capability)} : {}),
    Mounts: runtime.tmpfs.map(tmpfsMount),
  }
}

/** The task part: limits and bounded logs. */
export function lockedDownTask(spec: StackServiceSpec): Pick<Docker.TaskSpecBase, 'Resources' | 'LogDriver'> {
  const {limits, logging} = spec.runtime
  return {
    Resources: {Limits: {MemoryBytes: memoryBytes(limits.memory), NanoCPUs: Math.round(limits.cpus * 1e9)}},
    LogDriver: {Name: logging.driver, Options: {...logging.options}},
  }
}

/** Swarm wants CAP_ names (`CAP_NET_BIND_SERVICE`), as `docker service create --cap-add` sends them; ALL stays. */
function capability(name: string): string {
  return name === 'ALL' || name.startsWith('CAP_') ? name : `CAP_${name}`
}
