import type {IIoK8sApiCoreV1PodSecurityContext} from 'kubernetes-models/v1/PodSecurityContext'
import type {IIoK8sApiCoreV1SecurityContext} from 'kubernetes-models/v1/SecurityContext'
import type {IIoK8sApiCoreV1TopologySpreadConstraint} from 'kubernetes-models/v1/TopologySpreadConstraint'

import {WRITABLE_DIR} from './model.js'

/**
 * What every pod of the export shares: the Pod Security Standards' "restricted" profile (the Namespace
 * enforces it), so a pod that asked for more would be refused rather than run.
 */

export function podSecurityContext(uid: number): IIoK8sApiCoreV1PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    // Mounted Secrets become readable by the group (defaultMode 0440) and by no one else.
    fsGroup: uid,
    seccompProfile: {type: 'RuntimeDefault'},
  }
}

export function containerSecurityContext(): IIoK8sApiCoreV1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: {drop: ['ALL']},
  }
}

/** The emptyDir behind WRITABLE_DIR. */
export const writableVolume = {name: 'tmp', emptyDir: {}}
export const writableMount = {name: 'tmp', mountPath: WRITABLE_DIR}

/**
 * Replicas on different nodes (and zones, where the cluster has them). `required` for the gateway:
 * two gateway pods on one node would fall together.
 */
export function spreadAcrossNodes(
  matchLabels: Record<string, string>,
  required: boolean,
): IIoK8sApiCoreV1TopologySpreadConstraint[] {
  return [
    {
      maxSkew: 1,
      topologyKey: 'kubernetes.io/hostname',
      whenUnsatisfiable: required ? 'DoNotSchedule' : 'ScheduleAnyway',
      labelSelector: {matchLabels},
    },
    {
      maxSkew: 1,
      topologyKey: 'topology.kubernetes.io/zone',
      whenUnsatisfiable: 'ScheduleAnyway',
      labelSelector: {matchLabels},
    },
  ]
}
