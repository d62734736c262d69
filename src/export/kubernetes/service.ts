import type {IService} from 'kubernetes-models/v1/Service'

import {djangoServices} from '../../manifest/model.js'
import {
  ACME_SOLVER,
  ACME_SOLVER_PORT,
  GATEWAY,
  GATEWAY_CONTAINER_PORTS,
  GATEWAY_METRICS_SERVICE,
  metadata,
  resourceFile,
  selector,
  type ExportContext,
  type Resource,
  type ResourceBuilder,
} from './model.js'

/**
 * Django services are headless: their DNS name answers with one A record per ready pod, so the
 * gateway spreads requests (and retries) over the pods itself rather than through one virtual IP.
 */
function djangoService(context: ExportContext, name: string, port: number): Resource {
  const document: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(context, name, 'api'),
    spec: {
      clusterIP: 'None',
      selector: selector(context, name),
      ports: [{name: 'http', port, targetPort: 'http', protocol: 'TCP'}],
    },
  }
  return {file: resourceFile(name, 'Service'), document}
}

/**
 * The gateway behind the cloud's load balancer. externalTrafficPolicy Local keeps the client's
 * address (the rate limiter and the access log key on it): nodes without a gateway pod fail the load
 * balancer's health check instead of forwarding with their own address.
 */
function gatewayService(context: ExportContext): Resource {
  const tls = context.manifest.tls.mode !== 'off'
  const document: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(context, GATEWAY, 'gateway'),
    spec: {
      type: 'LoadBalancer',
      externalTrafficPolicy: 'Local',
      selector: selector(context, GATEWAY),
      ports: [
        {name: 'http', port: 80, targetPort: GATEWAY_CONTAINER_PORTS.http, protocol: 'TCP'},
        ...(tls
          ? [{name: 'https', port: 443, targetPort: GATEWAY_CONTAINER_PORTS.https, protocol: 'TCP' as const}]
          : []),
      ],
    },
  }
  return {file: resourceFile(GATEWAY, 'Service'), document}
}

/**
 * The metrics profile: a headless Service over the gateway pods' exporter port, so that a scraper that
 * discovers targets through Services (a ServiceMonitor) finds every pod. Headless: each pod is its own
 * target, and nothing here is reachable from outside the cluster (the LoadBalancer has only 80 and 443).
 * Its port is metrics.port of gateway.yaml (9113 by default).
 */
function metricsService(context: ExportContext, port: number): Resource {
  const document: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(context, GATEWAY_METRICS_SERVICE, 'metrics'),
    spec: {
      clusterIP: 'None',
      selector: selector(context, GATEWAY),
      ports: [{name: 'metrics', port, targetPort: 'metrics', protocol: 'TCP'}],
    },
  }
  return {file: resourceFile(GATEWAY_METRICS_SERVICE, 'Service'), document}
}

/**
 * tls.mode certbot: cert-manager starts HTTP-01 solver pods (labelled by the Issuer's podTemplate) for
 * the time of a challenge. This Service gives them a fixed name the gateway passes
 * /.well-known/acme-challenge/ to.
 */
function acmeSolverService(context: ExportContext): Resource {
  const document: IService = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(context, ACME_SOLVER, 'acme-solver'),
    spec: {
      clusterIP: 'None',
      selector: selector(context, ACME_SOLVER),
      ports: [{name: 'http', port: ACME_SOLVER_PORT, targetPort: ACME_SOLVER_PORT, protocol: 'TCP'}],
    },
  }
  return {file: resourceFile(ACME_SOLVER, 'Service'), document}
}

export const services: ResourceBuilder = {
  kind: 'Service',
  build: (context) => [
    ...djangoServices(context.manifest).map((service) => djangoService(context, service.name, service.port)),
    gatewayService(context),
    ...(context.manifest.metrics?.enabled ? [metricsService(context, context.manifest.metrics.port)] : []),
    ...(context.manifest.tls.mode === 'certbot' ? [acmeSolverService(context)] : []),
  ],
}
