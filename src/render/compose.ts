import {stringify} from 'yaml'

import type {Manifest} from '../manifest/schema.js'
import {
  buildStackSpec,
  INTERNAL_NETWORK,
  secretFile,
  type StackServiceSpec,
  type StackSpec,
  type StackToolSpec,
} from '../manifest/stack.js'
import type {PlannedFile} from './plan.js'

/**
 * docker-compose.yml built as an object and serialized with the yaml library: structure cannot break
 * on a quote or an indent the way a text template can. No `version:` key: the Compose Specification
 * made it obsolete and Compose v2 warns about it.
 */
export function composeObject(manifest: Manifest): Record<string, unknown> {
  return composeFromStack(buildStackSpec(manifest))
}

/**
 * The same from the stack spec. `up` creates its containers from this object too (normalized the way
 * Compose v2 loads it, src/docker/compose/), so the file and the containers cannot drift.
 */
export function composeFromStack(stack: Pick<StackSpec, 'services' | 'tools'>): Record<string, unknown> {
  const services: Record<string, unknown> = {}
  for (const spec of stack.services) services[spec.service] = composeService(spec)
  for (const tool of stack.tools) services[tool.service] = composeTool(tool)
  // No top-level `name:`: docker-compose 1.29 rejects it. The project name comes from
  // COMPOSE_PROJECT_NAME in .env, which Compose v1 and v2 both read.
  const compose: Record<string, unknown> = {services}
  // The networks and secrets the services name (derived from them, so one service alone still loads).
  const networks = [...new Set(stack.services.flatMap((spec) => spec.networks))].filter((key) => key !== 'default')
  if (networks.length > 0)
    compose.networks = Object.fromEntries(
      networks.map((key) => [key, key === INTERNAL_NETWORK ? {internal: true} : {}]),
    )
  const secrets = [...new Set(stack.services.flatMap((spec) => spec.secrets))]
  if (secrets.length > 0)
    compose.secrets = Object.fromEntries(secrets.map((key) => [key, {file: `./${secretFile(key)}`}]))
  return compose
}

function seconds(value: number): string {
  return `${value}s`
}

function composeService(spec: StackServiceSpec): Record<string, unknown> {
  const service: Record<string, unknown> = {}
  if (spec.build) service.build = {context: `./${spec.build.context}`, dockerfile: spec.build.dockerfile}
  service.image = spec.image
  if (spec.command) service.command = spec.command
  if (Object.keys(spec.environment).length > 0) service.environment = spec.environment
  if (spec.mounts.length > 0)
    service.volumes = spec.mounts.map((mount) => `./${mount.source}:${mount.target}${mount.readOnly ? ':ro' : ''}`)
  if (spec.ports.length > 0)
    service.ports = spec.ports.map(
      (port) => `${port.bind.includes(':') ? `[${port.bind}]` : port.bind}:${port.host}:${port.container}`,
    )
  if (spec.dependsOn.length > 0) {
    // restart: when `docker compose up` recreates a replica, Compose stops the gateway first and starts
    // it again after, so NGINX resolves the replicas' new addresses instead of proxying to stale ones
    // (an upstream name is resolved when NGINX loads its config). Compose v2.17+ reads it; docker-compose
    // 1.29 rejects the key. `create-gateway up` ignores it: it rolls replicas behind the running gateway.
    service.depends_on = Object.fromEntries(
      spec.dependsOn.map((name) => [name, {condition: 'service_healthy', restart: true}]),
    )
  }

  if (spec.healthcheck)
    service.healthcheck = {
      test: spec.healthcheck.test,
      interval: seconds(spec.healthcheck.intervalSeconds),
      timeout: seconds(spec.healthcheck.timeoutSeconds),
      retries: spec.healthcheck.retries,
      start_period: seconds(spec.healthcheck.startPeriodSeconds),
    }
  if (spec.stopSignal) service.stop_signal = spec.stopSignal
  service.stop_grace_period = seconds(spec.stopGraceSeconds)
  service.restart = spec.restart
  // Locked down, so a compromised service can do little (read-only root, capabilities dropped,
  // no-new-privileges): what `docker inspect` of every container shows.
  const runtime = spec.runtime
  if (runtime.readOnly) service.read_only = true
  if (runtime.tmpfs.length > 0) service.tmpfs = runtime.tmpfs
  if (runtime.capDrop.length > 0) service.cap_drop = runtime.capDrop
  if (runtime.capAdd.length > 0) service.cap_add = runtime.capAdd
  if (runtime.securityOpt.length > 0) service.security_opt = runtime.securityOpt
  if (runtime.groupAdd.length > 0) service.group_add = runtime.groupAdd
  service.logging = runtime.logging
  const limits = {cpus: runtime.limits.cpus, memory: runtime.limits.memory}
  service.deploy = spec.role === 'django' ? {replicas: spec.replicas, resources: {limits}} : {resources: {limits}}
  if (spec.networks.length > 0) service.networks = spec.networks
  if (spec.secrets.length > 0) service.secrets = spec.secrets
  return service
}

/** A one-off container: only under its profile, so `docker compose up` never starts it. */
function composeTool(spec: StackToolSpec): Record<string, unknown> {
  const service: Record<string, unknown> = {image: spec.image, profiles: [spec.profile], command: spec.command}
  if (Object.keys(spec.environment).length > 0) service.environment = spec.environment
  service.volumes = spec.mounts.map((mount) => `./${mount.source}:${mount.target}${mount.readOnly ? ':ro' : ''}`)
  return service
}

export function renderCompose(manifest: Manifest): PlannedFile {
  const header =
    '# Generated by create-gateway from gateway.yaml. `docker compose up -d --build` runs it as well as `create-gateway up`.\n'
  return {path: 'docker-compose.yml', content: header + stringify(composeObject(manifest), {lineWidth: 0})}
}
