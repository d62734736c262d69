import {Flags} from '@oclif/core'

import {CHECK_IDS} from '../verify/types.js'
import {renderTable, reportDocument} from '../verify/report.js'
import {runVerify, selectChecks} from '../verify/run.js'
import {loadManifest} from '../manifest/load.js'
import {findDeployedStack} from '../swarm/connect.js'
import {swarmVerifyEngine} from '../swarm/verify.js'
import {hostFlag, ProjectCommand} from './base.js'

export default class Verify extends ProjectCommand {
  static override enableJsonFlag = true
  static override summary = 'Run the testing checklist against the running stack and report each result.'
  static override description = `Checks, in order: ${CHECK_IDS.join(', ')}.

containers: every container running and healthy, and gateway/conf.d/upstreams.conf listing exactly the running replicas. config: nginx -t inside the gateway. redirect: plain HTTP answers a permanent redirect to the same path on HTTPS; the ACME challenge path is not redirected. tls: handshake with SNI = domain trusting certs/ca.pem (self-signed) or the system store; certificate name and expiry (fails under 7 days, warns under 21), TLS 1.2/1.3, TLS 1.1 refused, HSTS. routes: each route reaches its service (an unreachable external upstream fails, named as such). auth: protected routes answer 401 without and with wrong credentials, and accept the project's own. balance: requests reach every replica. rate-limit: an autocannon load test whose accepted count must match rate and burst. logs: the access log (the gateway's stdout, read through the engine) holds this run's request ids (X-Request-ID: verify-<run>-<n>), the error log (its stderr) has no emerg/alert/crit since the run began.

On a stack deployed to a swarm (\`deploy\`; found by its stack label on the manager at --host / DOCKER_HOST) the same checks run against its tasks: containers are the tasks (the upstream is resolved by DNS, nothing to compare), nginx -t runs in the gateway task's container on the manager, and the logs are the gateway service's stdout and stderr.

Requests go to 127.0.0.1 on the published ports only. Exit code 0 when every check passes, 1 when one fails, 2 on bad usage.`

  static override examples = [
    {description: 'Every check, as a table', command: '<%= config.bin %> verify --dir my-api'},
    {description: 'One JSON document, for CI', command: '<%= config.bin %> verify --json'},
    {description: 'Only the quick checks', command: '<%= config.bin %> verify --only containers,config,tls'},
    {description: 'Everything but the load test', command: '<%= config.bin %> verify --skip rate-limit'},
    {
      description:
        "A stack deployed to a swarm (found through --host or DOCKER_HOST): tasks for containers, nginx -t in the gateway's task",
      command: '<%= config.bin %> verify --host tcp://127.0.0.1:2375',
    },
  ]

  static override flags = {
    host: hostFlag,
    only: Flags.string({
      summary: `Run only these checks (comma-separated): ${CHECK_IDS.join(', ')}.`,
      multiple: true,
      delimiter: ',',
    }),
    'ca-file': Flags.file({
      summary:
        "Trust this CA certificate (PEM) in the tls check instead of certs/ca.pem or the system store, e.g. a private ACME CA's root.",
      exists: true,
    }),
    skip: Flags.string({summary: 'Skip these checks (comma-separated).', multiple: true, delimiter: ','}),
  }

  async run() {
    const {flags} = await this.parse(Verify)
    const checks = selectChecks(flags.only, flags.skip)
    // Deployed to a swarm (found by the stack label): the same checks against its tasks and service logs.
    const manifest = await loadManifest(flags.dir)
    const swarm = await findDeployedStack(manifest.name, flags.host)
    const report = await runVerify({
      dir: flags.dir,
      checks,
      ...(swarm ? {engine: swarmVerifyEngine(swarm, manifest.name)} : {}),
      caFile: flags['ca-file'],
      onStart: (check) => this.logToStderr(`- checking ${check.id}: ${check.title.toLowerCase()}`),
    })
    this.log(renderTable(report, {width: process.stdout.isTTY ? process.stdout.columns : undefined}))
    // Exit 1 with the report printed (the table, or {ok: false, ...} under --json).
    if (!report.ok) process.exitCode = 1
    return reportDocument(report)
  }
}
