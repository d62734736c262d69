import type {LogLine} from '../docker/gateway-log.js'
import {LABELS} from '../docker/spec.js'
import type {ContainerState} from '../docker/engine.js'

/**
 * NGINX in the gateway writes its JSON access log to stdout and its error log to stderr, on one host
 * and on a swarm alike; only who keeps them differs: the engine's log of the gateway container (capped,
 * see CONTAINER_LOGGING), or the gateway service's log on the swarm manager. verify reads them through
 * this, whichever it is.
 */
export interface GatewayLogSource {
  /** What to call each log in a report. */
  readonly names: {readonly access: string; readonly error: string}
  /** The last `tail` lines the gateway wrote, split into access and error lines; empty without a gateway. */
  read(tail: number): Promise<GatewayLogs>
}

export interface GatewayLogs {
  /** Access-log lines (JSON), oldest first, joined by newlines. */
  access: string
  /** Error-log lines, oldest first, joined by newlines. */
  error: string
}

/** stdout -> access log (the image's start-up notes are not JSON and count as such), stderr -> error log. */
export function splitGatewayLog(lines: readonly LogLine[]): GatewayLogs {
  const access: string[] = []
  const error: string[] = []
  for (const line of lines) (line.stream === 'stdout' ? access : error).push(line.text)
  return {access: access.join('\n'), error: error.join('\n')}
}

/** One host: the gateway's logs are its container's stdout and stderr. */
export const LOG_NAMES = {
  access: 'the access log (gateway stdout)',
  error: 'the error log (gateway stderr)',
} as const

/** What the one-host source asks of the engine: the project's containers and a container's last lines. */
export interface ContainerLogReader {
  containers(): Promise<ContainerState[]>
  logs(container: string, tail: number): Promise<LogLine[]>
}

/** The last `tail` lines of the gateway container's log (the running one, else the newest), split. */
export async function readGatewayLogs(reader: ContainerLogReader, tail: number): Promise<GatewayLogs> {
  const gateways = (await reader.containers()).filter((container) => container.labels[LABELS.service] === 'gateway')
  const gateway = gateways.find((container) => container.running) ?? gateways.at(-1)
  if (!gateway) return {access: '', error: ''}
  return splitGatewayLog(await reader.logs(gateway.id, tail))
}

/** One host's source: the gateway container's log, through the engine. */
export function containerLogSource(reader: ContainerLogReader): GatewayLogSource {
  return {names: LOG_NAMES, read: async (tail) => readGatewayLogs(reader, tail)}
}
