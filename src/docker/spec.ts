import {join, resolve} from 'node:path'
import {parseEnv} from 'node:util'

import type Docker from 'dockerode'

import {UsageError} from '../errors.js'
import {PROJECT_PATHS, type StackServiceSpec, type StackSpec} from '../manifest/stack.js'
import type {Manifest} from '../manifest/schema.js'
import {composeFromStack, composeObject} from '../render/compose.js'
import {readFileIfExists} from '../util/files.js'
import {composeContainer, type ExtraNetwork} from './compose/container.js'
import {COMPOSE_LABELS, COMPOSE_VERSION} from './compose/labels.js'
import type {NormalizedProject} from './compose/model.js'
import {composeNetworks} from './compose/networks.js'
import {normalizeProject} from './compose/project.js'
import {isNotOneOff} from './containers.js'
import type {ContainerState, Engine, Labels} from './engine.js'

/**
 * The pure half of `up`: from the stack spec to the exact container definitions (labels, env,
 * mounts, ports, healthcheck), their config hashes, and the plan that reconciles them with what runs.
 *
 * One source of truth: the service as the compose file describes it (render/compose.ts), normalized
 * the way Compose v2 loads it (compose/project.ts) and turned into create options the way Compose v2
 * creates containers (compose/container.ts). So `create-gateway up` and `docker compose up` make the
 * same containers with the same `com.docker.compose.config-hash`, and neither recreates the other's.
 */

export {COMPOSE_VERSION}

export const LABELS = {
  ...COMPOSE_LABELS,
  /** On images we build (Compose puts the project and service labels there too). */
  ownProject: 'dev.create-gateway.project',
  /** Test bookkeeping only: set when CREATE_GATEWAY_RUN_ID is (never for users); no hash covers it. */
  runId: 'dev.create-gateway.run-id',
} as const

export function runId(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.CREATE_GATEWAY_RUN_ID || undefined
}

// ---- .env and ${VAR} interpolation, the way Compose does it -------------------------------------

/** The project's `.env` (Compose reads the same file); missing file = no variables. */
export async function readProjectEnv(dir: string): Promise<Record<string, string>> {
  const text = await readFileIfExists(join(resolve(dir), PROJECT_PATHS.env))
  return text === undefined ? {} : (parseEnv(text.toString('utf8')) as Record<string, string>)
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
  /**
   * The compose file's object (render/compose.ts composeObject), for what lies outside one service:
   * top-level networks and secrets. Without it, the object is built from the service's own spec.
   */
  compose?: Record<string, unknown>
  /** `${VAR}` values (.env, then the shell) for strings outside `environment`. */
  variables?: Record<string, string | undefined>
}

/**
 * The context `up` and `scale` create replicas in, built one way for both so that a replica either
 * makes is the container Compose would make: the whole compose file (networks, secrets), `${VAR}`
 * values from `.env` then the shell (the shell wins), and the run id tests label containers with.
 */
export function projectContext(
  manifest: Manifest,
  stack: StackSpec,
  input: {
    dir: string
    imageIds: Record<string, string>
    environment: Record<string, Record<string, string>>
    dotenv: Record<string, string>
    env: NodeJS.ProcessEnv
  },
): ProjectContext {
  return {
    project: stack.project,
    dir: input.dir,
    network: stack.network,
    imageIds: input.imageIds,
    environment: input.environment,
    runId: runId(input.env),
    compose: composeObject(manifest),
    variables: {...input.dotenv, ...input.env},
  }
}

export interface DesiredContainer {
  service: string
  role: StackServiceSpec['role']
  number: number
  name: string
  /** Compose v2's config hash of the service (the same for every replica). */
  hash: string
  /** The image ID in `com.docker.compose.image`: Compose recreates when it differs, and so do we. */
  imageId: string
  options: Docker.ContainerCreateOptions
  /** Networks after the primary one, connected after create and before start (engine API < 1.44). */
  extraNetworks: ExtraNetwork[]
  stopGraceSeconds: number
}

/**
 * The compose project as Compose v2 loads it: the compose object with each service's environment
 * already resolved (shell over .env, as Compose does) and other `${VAR}` strings interpolated.
 */
export function composeProject(context: ProjectContext, fallback?: StackServiceSpec): NormalizedProject {
  const compose = context.compose ?? (fallback ? composeFromStack({services: [fallback], tools: []}) : {services: {}})
  const services = {...((compose.services ?? {}) as Record<string, Record<string, unknown>>)}
  for (const [name, service] of Object.entries(services)) {
    const resolved = context.environment[name]
    if (resolved && service.environment !== undefined) services[name] = {...service, environment: resolved}
  }

  return normalizeProject(
    {...compose, services},
    {
      project: context.project,
      dir: context.dir,
      interpolate: (value, where) => interpolate(value, context.variables ?? {}, where),
      home: process.env.HOME,
    },
  )
}

export function networkLabels(project: string): Labels {
  return {[LABELS.project]: project, [LABELS.network]: 'default', [LABELS.version]: COMPOSE_VERSION}
}

/** The project's networks as `docker compose up` creates them (labels with their config hash). */
export function desiredNetworks(context: ProjectContext, stack: StackSpec): ReturnType<typeof composeNetworks> {
  return composeNetworks(composeProject({...context, compose: context.compose ?? composeFromStack(stack)}))
}

/** Compose's labels for a container of `service` that is not created by `up` (one-off runs). */
export function containerLabels(context: ProjectContext, service: string, number: number): Labels {
  return {
    [LABELS.project]: context.project,
    [LABELS.service]: service,
    [LABELS.number]: String(number),
    [LABELS.oneoff]: 'False',
    [LABELS.workingDir]: context.dir,
    [LABELS.configFiles]: join(context.dir, PROJECT_PATHS.compose),
    [LABELS.version]: COMPOSE_VERSION,
    ...(context.runId ? {[LABELS.runId]: context.runId} : {}),
  }
}

/** The container of replica `number` of a service, exactly as `up` (and `docker compose up`) creates it. */
export function desiredContainer(spec: StackServiceSpec, number: number, context: ProjectContext): DesiredContainer {
  const project = composeProject(context, spec)
  const service = project.services[spec.service]
  if (!service) throw new Error(`the compose object has no service ${spec.service}`)
  const imageId = context.imageIds[spec.service] ?? ''
  const built = composeContainer(service, {
    project,
    configFile: join(context.dir, PROJECT_PATHS.compose),
    number,
    imageId,
    extraLabels: context.runId ? {[LABELS.runId]: context.runId} : {},
  })
  return {
    service: spec.service,
    role: spec.role,
    number,
    name: built.name,
    hash: built.hash,
    imageId,
    options: built.options,
    extraNetworks: built.extraNetworks,
    stopGraceSeconds: spec.stopGraceSeconds,
  }
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
  const pool = existing.filter(isNotOneOff)
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
        (container) =>
          container.name === want.name &&
          container.labels[LABELS.configHash] === want.hash &&
          container.labels[LABELS.image] === want.imageId,
      ) ??
      candidates.find((container) => container.name === want.name) ??
      candidates[0]
    if (!match) return {desired: want, action: 'create'}
    used.add(match.id)
    // A paused container would need an unpause nobody asked for: start it fresh instead. The image
    // label is Compose's own test for a new image (the config hash leaves the image ID out).
    if (
      match.name !== want.name ||
      match.labels[LABELS.configHash] !== want.hash ||
      match.labels[LABELS.image] !== want.imageId ||
      match.status === 'paused'
    ) {
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
    (container) => container.running && container.labels[LABELS.service] === 'gateway' && isNotOneOff(container),
  )
}

/** The same, asking the engine for the project's containers. */
export async function findRunningGateway(engine: Engine, project: string): Promise<ContainerState | undefined> {
  return runningGateway(await engine.containers({[LABELS.project]: project}))
}
