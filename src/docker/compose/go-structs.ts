import {type GoType, O, type StructType} from './go-json.js'

/** compose-go's structs (ServiceConfig, NetworkConfig and what they hold) as goJson reads them. */

const durationPtr: GoType = {ptr: 'duration'}
const strings: GoType = {slice: 'string'}
const stringMap: GoType = {map: 'string'}

const HEALTHCHECK: StructType = [
  ['test', strings, O],
  ['timeout', durationPtr, O],
  ['interval', durationPtr, O],
  ['retries', {ptr: 'int'}, O],
  ['start_period', durationPtr, O],
  ['start_interval', durationPtr, O],
  ['disable', 'bool', O],
]

const RESOURCE: StructType = [
  ['cpus', 'float32', O],
  ['memory', 'bytes', O],
  ['pids', 'int', O],
  ['devices', {slice: {map: 'string'}}, O],
  ['generic_resources', {slice: {map: 'string'}}, O],
]

const UPDATE_CONFIG: StructType = [
  ['parallelism', {ptr: 'int'}, O],
  ['delay', 'duration', O],
  ['failure_action', 'string', O],
  ['monitor', 'duration', O],
  ['max_failure_ratio', 'float32', O],
  ['order', 'string', O],
]

const DEPLOY: StructType = [
  ['mode', 'string', O],
  ['replicas', {ptr: 'int'}, O],
  ['labels', stringMap, O],
  ['update_config', {ptr: {struct: UPDATE_CONFIG}}, O],
  ['rollback_config', {ptr: {struct: UPDATE_CONFIG}}, O],
  // Struct values, not pointers: Go's omitempty never leaves them out (`"resources":{}`).
  [
    'resources',
    {
      struct: [
        ['limits', {ptr: {struct: RESOURCE}}, O],
        ['reservations', {ptr: {struct: RESOURCE}}, O],
      ],
    },
    O,
  ],
  [
    'restart_policy',
    {
      ptr: {
        struct: [
          ['condition', 'string', O],
          ['delay', durationPtr, O],
          ['max_attempts', {ptr: 'int'}, O],
          ['window', durationPtr, O],
        ],
      },
    },
    O,
  ],
  [
    'placement',
    {
      struct: [
        ['constraints', strings, O],
        ['preferences', {slice: {struct: [['spread', 'string', O]]}}, O],
        ['max_replicas_per_node', 'int', O],
      ],
    },
    O,
  ],
  ['endpoint_mode', 'string', O],
]

const FILE_REFERENCE: StructType = [
  ['source', 'string', O],
  ['target', 'string', O],
  ['uid', 'string', O],
  ['gid', 'string', O],
  ['mode', {ptr: 'fileMode'}, O],
]

const SERVICE_NETWORK: StructType = [
  ['aliases', strings, O],
  ['driver_opts', stringMap, O],
  ['gw_priority', 'int', O],
  ['interface_name', 'string', O],
  ['ipv4_address', 'string', O],
  ['ipv6_address', 'string', O],
  ['link_local_ips', strings, O],
  ['mac_address', 'string', O],
  ['priority', 'int', O],
]

const PORT: StructType = [
  ['name', 'string', O],
  ['mode', 'string', O],
  ['host_ip', 'string', O],
  ['target', 'int', O],
  ['published', 'string', O],
  ['protocol', 'string', O],
  ['app_protocol', 'string', O],
]

const VOLUME: StructType = [
  ['type', 'string', O],
  ['source', 'string', O],
  ['target', 'string', O],
  ['read_only', 'bool', O],
  ['consistency', 'string', O],
  [
    'bind',
    {
      ptr: {
        struct: [
          ['selinux', 'string', O],
          ['propagation', 'string', O],
          ['create_host_path', 'bool', O],
          ['recursive', 'string', O],
        ],
      },
    },
    O,
  ],
  [
    'volume',
    {
      ptr: {
        struct: [
          ['labels', stringMap, O],
          ['nocopy', 'bool', O],
          ['subpath', 'string', O],
        ],
      },
    },
    O,
  ],
  [
    'tmpfs',
    {
      ptr: {
        struct: [
          ['size', 'bytes', O],
          ['mode', 'int', O],
        ],
      },
    },
    O,
  ],
  ['image', {ptr: {struct: [['subpath', 'string', O]]}}, O],
]

const BUILD: StructType = [
  ['context', 'string', O],
  ['dockerfile', 'string', O],
  ['dockerfile_inline', 'string', O],
  ['entitlements', strings, O],
  ['args', {map: {ptr: 'string'}}, O],
  ['provenance', 'string', O],
  ['sbom', 'string', O],
  ['ssh', {slice: {map: 'string'}}, O],
  ['labels', stringMap, O],
  ['cache_from', strings, O],
  ['cache_to', strings, O],
  ['no_cache', 'bool', O],
  ['additional_contexts', stringMap, O],
  ['pull', 'bool', O],
  ['extra_hosts', {map: strings}, O],
  ['isolation', 'string', O],
  ['network', 'string', O],
  ['target', 'string', O],
  ['secrets', {slice: {struct: FILE_REFERENCE}}, O],
  ['shm_size', 'bytes', O],
  ['tags', strings, O],
  ['ulimits', {map: {ptr: 'ulimit'}}, O],
  ['platforms', strings, O],
  ['privileged', 'bool', O],
]

const LOGGING: StructType = [
  ['driver', 'string', O],
  ['options', stringMap, O],
]

/** compose-go's ServiceConfig, field for field, in declaration order. */
export const SERVICE: StructType = [
  ['profiles', strings, O],
  ['annotations', stringMap, O],
  ['attach', {ptr: 'bool'}, O],
  ['build', {ptr: {struct: BUILD}}, O],
  ['develop', {ptr: {map: 'string'}}, O],
  ['blkio_config', {ptr: {map: 'string'}}, O],
  ['cap_add', strings, O],
  ['cap_drop', strings, O],
  ['cgroup_parent', 'string', O],
  ['cgroup', 'string', O],
  ['cpu_count', 'int', O],
  ['cpu_percent', 'float32', O],
  ['cpu_period', 'int', O],
  ['cpu_quota', 'int', O],
  ['cpu_rt_period', 'int', O],
  ['cpu_rt_runtime', 'int', O],
  ['cpus', 'float32', O],
  ['cpuset', 'string', O],
  ['cpu_shares', 'int', O],
  // ShellCommand has no omitempty in JSON: an unset command is `"command":null`.
  ['command', strings],
  ['configs', {slice: {struct: FILE_REFERENCE}}, O],
  ['container_name', 'string', O],
  ['credential_spec', {ptr: {map: 'string'}}, O],
  [
    'depends_on',
    {
      map: {
        struct: [
          ['condition', 'string', O],
          ['restart', 'bool', O],
          ['required', 'bool'],
        ],
      },
    },
    O,
  ],
  ['deploy', {ptr: {struct: DEPLOY}}, O],
  ['device_cgroup_rules', strings, O],
  ['devices', {slice: {struct: FILE_REFERENCE}}, O],
  ['dns', strings, O],
  ['dns_opt', strings, O],
  ['dns_search', strings, O],
  ['dockerfile', 'string', O],
  ['domainname', 'string', O],
  ['entrypoint', strings],
  ['provider', {ptr: {map: 'string'}}, O],
  ['environment', {map: {ptr: 'string'}}, O],
  ['env_file', {slice: {map: 'string'}}, O],
  ['expose', strings, O],
  ['extends', {ptr: {map: 'string'}}, O],
  ['external_links', strings, O],
  ['extra_hosts', {map: strings}, O],
  ['group_add', strings, O],
  ['gpus', {slice: {map: 'string'}}, O],
  ['hostname', 'string', O],
  ['healthcheck', {ptr: {struct: HEALTHCHECK}}, O],
  ['image', 'string', O],
  ['init', {ptr: 'bool'}, O],
  ['ipc', 'string', O],
  ['isolation', 'string', O],
  ['labels', stringMap, O],
  ['label_file', strings, O],
  ['links', strings, O],
  ['logging', {ptr: {struct: LOGGING}}, O],
  ['log_driver', 'string', O],
  ['log_opt', stringMap, O],
  ['mem_limit', 'bytes', O],
  ['mem_reservation', 'bytes', O],
  ['memswap_limit', 'bytes', O],
  ['mem_swappiness', 'bytes', O],
  ['mac_address', 'string', O],
  ['models', {map: {ptr: {map: 'string'}}}, O],
  ['net', 'string', O],
  ['network_mode', 'string', O],
  ['networks', {map: {ptr: {struct: SERVICE_NETWORK}}}, O],
  ['oom_kill_disable', 'bool', O],
  ['oom_score_adj', 'int', O],
  ['pid', 'string', O],
  ['pids_limit', 'int', O],
  ['platform', 'string', O],
  ['ports', {slice: {struct: PORT}}, O],
  ['privileged', 'bool', O],
  ['pull_policy', 'string', O],
  ['read_only', 'bool', O],
  ['restart', 'string', O],
  ['runtime', 'string', O],
  ['scale', {ptr: 'int'}, O],
  ['secrets', {slice: {struct: FILE_REFERENCE}}, O],
  ['security_opt', strings, O],
  ['shm_size', 'bytes', O],
  ['stdin_open', 'bool', O],
  ['stop_grace_period', durationPtr, O],
  ['stop_signal', 'string', O],
  ['storage_opt', stringMap, O],
  ['sysctls', stringMap, O],
  ['tmpfs', strings, O],
  ['tty', 'bool', O],
  ['ulimits', {map: {ptr: 'ulimit'}}, O],
  ['use_api_socket', 'bool', O],
  ['user', 'string', O],
  ['userns_mode', 'string', O],
  ['uts', 'string', O],
  ['volume_driver', 'string', O],
  ['volumes', {slice: {struct: VOLUME}}, O],
  ['volumes_from', strings, O],
  ['working_dir', 'string', O],
  ['post_start', {slice: {map: 'string'}}, O],
  ['pre_stop', {slice: {map: 'string'}}, O],
]

/** compose-go's NetworkConfig. */
export const NETWORK: StructType = [
  ['name', 'string', O],
  ['driver', 'string', O],
  ['driver_opts', stringMap, O],
  [
    'ipam',
    {
      struct: [
        ['driver', 'string', O],
        [
          'config',
          {
            slice: {
              ptr: {
                struct: [
                  ['subnet', 'string', O],
                  ['gateway', 'string', O],
                  ['ip_range', 'string', O],
                  ['aux_addresses', stringMap, O],
                ],
              },
            },
          },
          O,
        ],
      ],
    },
    O,
  ],
  ['external', 'bool', O],
  ['internal', 'bool', O],
  ['attachable', 'bool', O],
  ['labels', stringMap, O],
  ['enable_ipv4', {ptr: 'bool'}, O],
  ['enable_ipv6', {ptr: 'bool'}, O],
]
