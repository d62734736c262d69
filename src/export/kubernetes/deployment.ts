import {createHash} from 'node:crypto'
import {posix} from 'node:path'

import type {IDeployment} from 'kubernetes-models/apps/v1/Deployment'
import type {IIoK8sApiCoreV1Container} from 'kubernetes-models/v1/Container'
import type {IIoK8sApiCoreV1EnvVar} from 'kubernetes-models/v1/EnvVar'
import type {IIoK8sApiCoreV1Probe} from 'kubernetes-models/v1/Probe'
import type {IIoK8sApiCoreV1Volume} from 'kubernetes-models/v1/Volume'
import type {IIoK8sApiCoreV1VolumeMount} from 'kubernetes-models/v1/VolumeMount'

import {djangoServices, type NamedDjangoService} from '../../manifest/model.js'
import {buildStackSpec, GATEWAY_PATHS, METRICS_STUB_STATUS_PATH} from '../../manifest/stack.js'
import {configMapItems} from './config-map.js'
import {
  DEFAULT_RESOURCES,
  DJANGO_UID,
  djangoSecretName,
  EXPORTER_CONTAINER_PORT,
  GATEWAY,
  GATEWAY_AUTH_SECRET,
  GATEWAY_CONFIG_MAP,
  GATEWAY_CONTAINER_PORTS,
  GATEWAY_REPLICAS,
  GATEWAY_TLS_SECRET,
  GATEWAY_UID,
  GUNICORN_WORKERS,
  localImageName,
  metadata,
  resourceFile,
  selector,
  WRITABLE_DIR,
  type ExportContext,
  type Resource,
  type ResourceBuilder,
} from './model.js'
import {containerSecurityContext, podSecurityContext, spreadAcrossNodes, writableMount, writableVolume} from './pod.js'
import {gatewayAuthData, tlsData} from './secret.js'

/** A pod template annotation: a changed configuration or secret rolls the pods (they read both at start). */
const CONFIG_HASH = 'create-gateway/config-sha256'

function sha256(...parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex')
}

function probe(path: string, port: string, failureThreshold: number, host?: string): IIoK8sApiCoreV1Probe {
  return {
    httpGet: {path, port, ...(host ? {httpHeaders: [{name: 'Host', value: host}]} : {})},
    periodSeconds: 5,
    timeoutSeconds: 3,
    failureThreshold,
  }
}

/** Django's environment as the compose file has it, with SECRET_KEY taken from the service's Secret. */
function djangoEnv(context: ExportContext, service: NamedDjangoService): IIoK8sApiCoreV1EnvVar[] {
  const spec = buildStackSpec(context.manifest).services.find((entry) => entry.service === service.name)
  // The compose file hands SECRET_KEY over as a file (Compose secrets); here it comes from the Secret.
  const env: IIoK8sApiCoreV1EnvVar[] = [
    {
      name: 'DJANGO_SECRET_KEY',
      valueFrom: {secretKeyRef: {name: djangoSecretName(service.name), key: 'DJANGO_SECRET_KEY'}},
    },
  ]
  for (const [name, value] of Object.entries(spec?.environment ?? {})) {
    if (name === 'DJANGO_SECRET_KEY_FILE' || name === 'GUNICORN_WORKERS') continue
    env.push({name, value})
  }

  // Scale out by replicas: Gunicorn's default counts the node's cores, not the pod's CPU limit.
  env.push({name: 'GUNICORN_WORKERS', value: String(GUNICORN_WORKERS)})
  return env
}

function djangoDeployment(context: ExportContext, service: NamedDjangoService): Resource {
  const matchLabels = selector(context, service.name)
  const document: IDeployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(context, service.name, 'api'),
    spec: {
      replicas: service.replicas,
      selector: {matchLabels},
      // A new replica must be ready before an old one goes, as `up` does on one host.
      strategy: {type: 'RollingUpdate', rollingUpdate: {maxUnavailable: 0, maxSurge: 1}},
      template: {
        metadata: {
          labels: metadata(context, service.name, 'api').labels,
          annotations: {[CONFIG_HASH]: sha256(context.secrets.secretKeys[service.name])},
        },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: podSecurityContext(DJANGO_UID),
          // Gunicorn's graceful_timeout is 20 s, after the 5 s preStop pause.
          terminationGracePeriodSeconds: 30,
          topologySpreadConstraints: spreadAcrossNodes(matchLabels, false),
          containers: [
            {
              name: 'django',
              image: `${localImageName(context, service.name)}:latest`,
              imagePullPolicy: 'IfNotPresent',
              ports: [{name: 'http', containerPort: service.port, protocol: 'TCP'}],
              env: djangoEnv(context, service),
              // Host: localhost, because the kubelet would send the pod's IP, which ALLOWED_HOSTS refuses.
              startupProbe: probe('/healthz', 'http', 24, 'localhost'),
              readinessProbe: probe('/healthz', 'http', 3, 'localhost'),
              livenessProbe: probe('/healthz', 'http', 6, 'localhost'),
              // The endpoint is removed while the pod still serves: the gateway's DNS cache (resolverValid)
              // and in-flight requests catch up before Gunicorn gets SIGTERM.
              lifecycle: {preStop: {exec: {command: ['sleep', '5']}}},
              resources: structuredClone(DEFAULT_RESOURCES.django),
              securityContext: containerSecurityContext(),
              volumeMounts: [writableMount],
            },
          ],
          volumes: [writableVolume],
        },
      },
    },
  }
  return {file: resourceFile(service.name, 'Deployment'), document}
}

function gatewayVolumes(context: ExportContext): {
  volumes: IIoK8sApiCoreV1Volume[]
  mounts: IIoK8sApiCoreV1VolumeMount[]
} {
  const files = configMapItems(context)
  const volumes: IIoK8sApiCoreV1Volume[] = [writableVolume]
  const mounts: IIoK8sApiCoreV1VolumeMount[] = [writableMount]
  // One ConfigMap, one volume per folder NGINX reads: nginx.conf itself sits next to the image's
  // mime.types and modules/, so it comes in by subPath rather than as a whole /etc/nginx.
  const folders = [
    {name: 'nginx-conf', under: '', mountPath: GATEWAY_PATHS.config, subPath: 'nginx.conf'},
    {name: 'nginx-confd', under: 'conf.d/', mountPath: GATEWAY_PATHS.confd},
    {name: 'nginx-njs', under: 'njs/', mountPath: GATEWAY_PATHS.njs},
  ]
  for (const folder of folders) {
    const items = files
      .filter((file) => (folder.under === '' ? !file.path.includes('/') : file.path.startsWith(folder.under)))
      .map((file) => ({key: file.key, path: file.path.slice(folder.under.length)}))
    if (items.length === 0) continue
    volumes.push({name: folder.name, configMap: {name: GATEWAY_CONFIG_MAP, items}})
    mounts.push({
      name: folder.name,
      mountPath: folder.mountPath,
      readOnly: true,
      ...(folder.subPath ? {subPath: folder.subPath} : {}),
    })
  }

  const auth = Object.keys(gatewayAuthData(context))
  if (auth.length > 0) {
    volumes.push({
      name: 'auth',
      secret: {secretName: GATEWAY_AUTH_SECRET, defaultMode: 0o440, items: auth.map((key) => ({key, path: key}))},
    })
    mounts.push({name: 'auth', mountPath: posix.dirname(GATEWAY_PATHS.htpasswd), readOnly: true})
  }

  if (context.manifest.tls.mode !== 'off') {
    volumes.push({
      name: 'tls',
      secret: {
        secretName: GATEWAY_TLS_SECRET,
        defaultMode: 0o440,
        items: [
          {key: 'tls.crt', path: 'fullchain.pem'},
          {key: 'tls.key', path: 'privkey.pem'},
        ],
        // cert-manager creates the Secret only once the certificate is issued, through this very
        // gateway (HTTP-01 on port 80): the pod starts without it and reads it at each handshake.
        ...(context.manifest.tls.mode === 'certbot' ? {optional: true} : {}),
      },
    })
    mounts.push({name: 'tls', mountPath: GATEWAY_PATHS.certs, readOnly: true})
  }

  return {volumes, mounts}
}

/**
 * Prometheus's conventional pod annotations (the `kubernetes-pods` job of the community chart and of
 * most example configurations): scrape this pod's exporter port at /metrics. Only on the pods, not on
 * the metrics Service, so a Prometheus that follows both does not scrape each pod twice.
 */
export const PROMETHEUS_ANNOTATIONS = {
  'prometheus.io/scrape': 'true',
  'prometheus.io/port': String(EXPORTER_CONTAINER_PORT),
  'prometheus.io/path': '/metrics',
} as const

/**
 * The metrics profile's NGINX exporter, a sidecar of each gateway pod: it scrapes that pod's NGINX over
 * the pod's loopback (the status listener's stub_status, never behind the LoadBalancer) and serves
 * /metrics on its own port. The compose service's image and arguments, the pod's lockdown. No probe:
 * a pod is ready when its NGINX is, whatever the exporter does, and the exporter reports a NGINX it
 * cannot reach as nginx_up 0 rather than failing.
 */
function exporterContainer(context: ExportContext): IIoK8sApiCoreV1Container {
  return {
    name: 'nginx-exporter',
    image: context.manifest.images.exporter,
    imagePullPolicy: 'IfNotPresent',
    args: [
      `--nginx.scrape-uri=http://127.0.0.1:${GATEWAY_CONTAINER_PORTS.status}${METRICS_STUB_STATUS_PATH}`,
      `--web.listen-address=:${EXPORTER_CONTAINER_PORT}`,
    ],
    ports: [{name: 'metrics', containerPort: EXPORTER_CONTAINER_PORT, protocol: 'TCP'}],
    resources: structuredClone(DEFAULT_RESOURCES.exporter),
    securityContext: containerSecurityContext(),
  }
}

function gatewayDeployment(context: ExportContext): Resource {
  const matchLabels = selector(context, GATEWAY)
  const {volumes, mounts} = gatewayVolumes(context)
  const tls = context.manifest.tls.mode !== 'off'
  const metrics = context.manifest.metrics?.enabled === true
  const document: IDeployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(context, GATEWAY, 'gateway'),
    spec: {
      replicas: GATEWAY_REPLICAS,
      selector: {matchLabels},
      strategy: {type: 'RollingUpdate', rollingUpdate: {maxUnavailable: 0, maxSurge: 1}},
      template: {
        metadata: {
          labels: metadata(context, GATEWAY, 'gateway').labels,
          annotations: {
            [CONFIG_HASH]: sha256(
              configMapItems(context).map((file) => [file.key, file.content]),
              gatewayAuthData(context),
              tlsData(context),
            ),
            ...(metrics ? PROMETHEUS_ANNOTATIONS : {}),
          },
        },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: podSecurityContext(GATEWAY_UID),
          terminationGracePeriodSeconds: 30,
          topologySpreadConstraints: spreadAcrossNodes(matchLabels, true),
          containers: [
            {
              name: 'nginx',
              image: context.manifest.images.nginx,
              imagePullPolicy: 'IfNotPresent',
              ports: [
                {name: 'http', containerPort: GATEWAY_CONTAINER_PORTS.http, protocol: 'TCP'},
                ...(tls
                  ? [{name: 'https', containerPort: GATEWAY_CONTAINER_PORTS.https, protocol: 'TCP' as const}]
                  : []),
                {name: 'status', containerPort: GATEWAY_CONTAINER_PORTS.status, protocol: 'TCP' as const},
              ],
              readinessProbe: probe('/healthz', 'status', 3),
              livenessProbe: probe('/healthz', 'status', 6),
              // Kubernetes sends SIGTERM, NGINX's fast shutdown: first let the load balancer stop sending,
              // then SIGQUIT (graceful: in-flight requests finish) and wait for the master to exit.
              lifecycle: {
                preStop: {
                  exec: {
                    command: [
                      '/bin/sh',
                      '-c',
                      `sleep 5; nginx -s quit; while [ -e ${WRITABLE_DIR}/nginx.pid ]; do sleep 1; done`,
                    ],
                  },
                },
              },
              resources: structuredClone(DEFAULT_RESOURCES.gateway),
              securityContext: containerSecurityContext(),
              volumeMounts: mounts,
            },
            ...(metrics ? [exporterContainer(context)] : []),
          ],
          volumes,
        },
      },
    },
  }
  return {file: resourceFile(GATEWAY, 'Deployment'), document}
}

export const deployments: ResourceBuilder = {
  kind: 'Deployment',
  build: (context) => [
    ...djangoServices(context.manifest).map((service) => djangoDeployment(context, service)),
    gatewayDeployment(context),
  ],
}
