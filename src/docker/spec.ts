import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {join, resolve} from 'node:path'
import {parseEnv} from 'node:util'

import type Docker from 'dockerode'

import {UsageError} from '../errors.js'
import {PROJECT_PATHS, type StackServiceSpec, type StackSpec} from '../manifest/stack.js'
import type {ContainerState, Engine, Labels} from './engine.js'

/**
 * The pure half of `up`: from the stack spec to the exact container definitions (labels, env,
 * mounts, ports, healthcheck), their config hashes, and the plan that reconciles them with what runs.
 */

/** The Compose version we claim in labels; `docker compose` v2 and docker-compose 1.29 both accept it. */
export const COMPOSE_VERSION = '2.24.0'

export const LABELS = {
  project: 'com.docker.compose.project',
  service: 'com.docker.compose.service',
  number: 'com.docker.compose.container-number',
  oneoff: 'com.docker.compose.oneoff',
  configHash: 'com.docker.compose.config-hash',
  workingDir: 'com.docker.compose.project.working_dir',
  configFiles: 'com.docker.compose.project.config_files',
  version: 'com.docker.compose.version',
  network: 'com.docker.compose.network',
  volume: 'com.docker.compose.volume',
  ownProject: 'dev.create-gateway.project',
  runId: 'dev.create-gateway.run-id',
} as const

/** Labels that say nothing about the container's configuration and so stay out of its hash. */
const UNHASHED_LABELS: ReadonlySet<string> = new Set([LABELS.configHash, LABELS.runId])

export function runId(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.CREATE_GATEWAY_RUN_ID || undefined
}

// ---- .env and ${VAR} interpolation, the way Compose does it -------------------------------------

/** The project's `.env` (Compose reads the same file); missing file = no variables. */
export async function readProjectEnv(dir: string): Promise<Record<string, string>> {
  try {
    return parseEnv(await readFile(join(resolve(dir), PROJECT_PATHS.env), 'utf8')) as Record<string, string>
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw error
  }
}

/**
 * Compose's interpolation: `$$` is a literal `$`; `${VAR}` and `$VAR`; `${VAR:-default}` /
 * `${VAR-default}`; `${VAR:?message}` / `${VAR?message}`; `${VAR:+alt}` / `${VAR+alt}`. A variable
 * with no value and no default is an error here (Compose only warns and substitutes ""), because a
 * silently empty SECRET_KEY is worse than a clear stop.
 */
export function interpolate(value: string, variables: Record<string, string | undefined>, where: string): string {
  const pattern = /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^}\\]|\\.)*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g
  return value.replace(
    pattern,
    (
      _match,
      dollar: string | undefined,
      braced: string | undefined,
      operator: string | undefined,
      argument: string | undefined,
      bare: string | undefined,
    ) => {
      if (dollar) return '$'
      const name = (braced ?? bare)!
      const current = variables[name]
      const set = current !== undefined
      const nonEmpty = set && current !== ''
      switch (operator) {
        case ':-':
          return nonEmpty ? current! : (argument ?? '')
        case '-':
          return set ? current! : (argument ?? '')
        case ':+':
          return nonEmpty ? (argument ?? '') : ''
        case '+':
          return set ? (argument ?? '') : ''
        case ':?':
        case '?':
          if (operator === ':?' ? nonEmpty : set) return current!
          throw new UsageError(`${where}: variable ${name} is not set${argument ? `: ${argument}` : ''}`, {
            hint: `Add ${name}=... to ${PROJECT_PATHS.env} in the project.`,
          })
        default:
          if (set) return current!
          throw new UsageError(`${where} uses \${${name}}, but ${PROJECT_PATHS.env} does not set ${name}`, {
            hint: `Add ${name}=... to ${PROJECT_PATHS.env} (or export it in the shell), then run the command again.`,
          })
      }
    },
  )
}

/**
 * Resolve a service's environment. As in Compose, a variable exported in the shell wins over the
 * same name in `.env`, so `docker compose up` and `create-gateway up` start identical containers.
 */
export function resolveEnvironment(
  spec: StackServiceSpec,
  dotenv: Record<string, string>,
  shell: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const variables: Record<string, string | undefined> = {...dotenv}
  for (const [key, value] of Object.entries(shell)) if (value !== undefined) variables[key] = value
  return Object.fromEntries(
    Object.entries(spec.environment).map(([key, value]) => [
      key,
      interpolate(value, variables, `services.${spec.service}.environment.${key}`),
    ]),
  )
}

// ---- container definitions -----------------------------------------------------------------------

export interface ProjectContext {
  project: string
  /** Absolute project directory. */
  dir: string
  network: string
  /** Image ID of each service's image (built or local), part of the hash so a new image recreates. */
  imageIds: Record<string, string>
  /** Resolved environment of each service. */
  environment: Record<string, Record<string, string>>
  runId?: string
}

export interface DesiredContainer {
  service: string
  role: StackServiceSpec['role']
  number: number
  name: string
  hash: string
  options: Docker.ContainerCreateOptions
  stopGraceSeconds: number
}

const NANOSECONDS = 1_000_000_000

function portKey(port: number): string {
  return `${port}/tcp`
}

/** Sorted-key JSON, so the same configuration always hashes the same. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => stableJson(item)).join(',')}]`
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${stableJson(item)}`).join(',')}}`
  }

  return JSON.stringify(value)
}

/** sha256 of everything that defines the container, including the image ID, minus bookkeeping labels. */
export function configHash(options: Docker.ContainerCreateOptions, imageId: string): string {
  const labels = Object.fromEntries(Object.entries(options.Labels ?? {}).filter(([key]) => !UNHASHED_LABELS.has(key)))
  return createHash('sha256')
    .update(stableJson({...options, Labels: labels, imageId}))
    .digest('hex')
}

export function networkLabels(project: string): Labels {
  return {[LABELS.project]: project, [LABELS.network]: 'default', [LABELS.version]: COMPOSE_VERSION}
}

export function containerLabels(context: ProjectContext, service: string, number: number): Labels {
  return {
    [LABELS.project]: context.project,
    [LABELS.service]: service,
    [LABELS.number]: String(number),
    [LABELS.oneoff]: 'False',
    [LABELS.workingDir]: context.dir,
    [LABELS.configFiles]: join(context.dir, PROJECT_PATHS.compose),
    [LABELS.version]: COMPOSE_VERSION,
    [LABELS.ownProject]: context.project,
    ...(context.runId ? {[LABELS.runId]: context.runId} : {}),
  }
}

/** The container of replica `number` of a service, exactly as `up` creates it. */
export function desiredContainer(spec: StackServiceSpec, number: number, context: ProjectContext): DesiredContainer {
  const name = `${context.project}-${spec.service}-${number}`
  const environment = context.environment[spec.service] ?? {}
  const portBindings: Record<string, Array<{HostIp: string; HostPort: string}>> = {}
  const exposed: Record<string, object> = {}
  for (const port of spec.ports) {
    exposed[portKey(port.container)] = {}
    ;(portBindings[portKey(port.container)] ??= []).push({HostIp: port.bind, HostPort: String(port.host)})
  }

  const options: Docker.ContainerCreateOptions = {
    name,
    Image: spec.image,
    Env: Object.entries(environment).map(([key, value]) => `${key}=${value}`),
    ...(spec.command ? {Cmd: spec.command} : {}),
    Labels: containerLabels(context, spec.service, number),
    ...(spec.ports.length > 0 ? {ExposedPorts: exposed} : {}),
    Healthcheck: {
      Test: spec.healthcheck.test,
      Interval: spec.healthcheck.intervalSeconds * NANOSECONDS,
      Timeout: spec.healthcheck.timeoutSeconds * NANOSECONDS,
      Retries: spec.healthcheck.retries,
      StartPeriod: spec.healthcheck.startPeriodSeconds * NANOSECONDS,
    },
    ...(spec.stopSignal ? {StopSignal: spec.stopSignal} : {}),
    StopTimeout: spec.stopGraceSeconds,
    HostConfig: {
      Binds: spec.mounts.map(
        (mount) => `${resolve(context.dir, mount.source)}:${mount.target}:${mount.readOnly ? 'ro' : 'rw'}`,
      ),
      ...(spec.ports.length > 0 ? {PortBindings: portBindings} : {}),
      RestartPolicy: {Name: spec.restart},
      NetworkMode: context.network,
    },
    NetworkingConfig: {EndpointsConfig: {[context.network]: {Aliases: [spec.service, name]}}},
  }

  const hash = configHash(options, context.imageIds[spec.service] ?? '')
  options.Labels = {...options.Labels, [LABELS.configHash]: hash}
  return {service: spec.service, role: spec.role, number, name, hash, options, stopGraceSeconds: spec.stopGraceSeconds}
}

export function desiredContainers(stack: StackSpec, context: ProjectContext): DesiredContainer[] {
  return stack.services.flatMap((spec) =>
    Array.from({length: spec.replicas}, (_, index) => desiredContainer(spec, index + 1, context)),
  )
}

/** Services in start order: each after everything it depends on (the gateway after the Django services). */
export function startWaves(stack: StackSpec): StackServiceSpec[][] {
  const waves: StackServiceSpec[][] = []
  const placed = new Set<string>()
  let remaining = [...stack.services]
  while (remaining.length > 0) {
    const wave = remaining.filter((spec) =>
      spec.dependsOn.every((name) => placed.has(name) || !stack.services.some((other) => other.service === name)),
    )
    if (wave.length === 0)
      throw new UsageError(
        `services depend on each other in a cycle: ${remaining.map((spec) => spec.service).join(', ')}`,
      )
    waves.push(wave)
    for (const spec of wave) placed.add(spec.service)
    remaining = remaining.filter((spec) => !wave.includes(spec))
  }

  return waves
}

// ---- reconcile ---------------------------------------------------------------------------------

export type ContainerAction = 'keep' | 'start' | 'create' | 'recreate'

export interface PlannedContainer {
  desired: DesiredContainer
  action: ContainerAction
  existing?: ContainerState
}

export interface ContainerPlan {
  containers: PlannedContainer[]
  /** Project containers the manifest no longer describes: extra replicas, removed services, duplicates. */
  remove: ContainerState[]
}

/**
 * What to do with each container so that what runs matches the manifest. Containers are matched by
 * their Compose labels (service, number), not by name, so a stack that `docker compose up` made
 * (named `<project>_web_1` by Compose v1) is adopted and recreated rather than duplicated.
 */
export function planContainers(desired: DesiredContainer[], existing: ContainerState[]): ContainerPlan {
  const pool = existing.filter((container) => container.labels[LABELS.oneoff] !== 'True')
  const used = new Set<string>()
  const containers: PlannedContainer[] = desired.map((want) => {
    const candidates = pool.filter(
      (container) =>
        !used.has(container.id) &&
        container.labels[LABELS.service] === want.service &&
        container.labels[LABELS.number] === String(want.number),
    )
    // Prefer the one with our name and hash, then one with our name: the others are duplicates.
    const match =
      candidates.find(
        (container) => container.name === want.name && container.labels[LABELS.configHash] === want.hash,
      ) ??
      candidates.find((container) => container.name === want.name) ??
      candidates[0]
    if (!match) return {desired: want, action: 'create'}
    used.add(match.id)
    // A paused container would need an unpause nobody asked for: start it fresh instead.
    if (match.name !== want.name || match.labels[LABELS.configHash] !== want.hash || match.status === 'paused') {
      return {desired: want, action: 'recreate', existing: match}
    }

    if (!match.running) return {desired: want, action: 'start', existing: match}
    return {desired: want, action: 'keep', existing: match}
  })
  const remove = pool.filter((container) => !used.has(container.id))
  return {containers, remove}
}

/**
 * The project's running gateway among its containers, found by Compose's labels rather than by name,
 * so a gateway that `docker compose up` started (`<project>_gateway_1` under Compose v1) counts too.
 */
export function runningGateway(containers: readonly ContainerState[]): ContainerState | undefined {
  return containers.find(
    (container) =>
      container.running && container.labels[LABELS.service] === 'gateway' && container.labels[LABELS.oneoff] !== 'True',
  )
}

/** The same, asking the engine for the project's containers. */
export async function findRunningGateway(engine: Engine, project: string): Promise<ContainerState | undefined> {
  return runningGateway(await engine.containers({[LABELS.project]: project}))
}
