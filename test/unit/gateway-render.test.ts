import {describe, expect, it} from 'vitest'

import {parseManifest} from '../../src/manifest/load.js'
import type {ManifestInput} from '../../src/manifest/schema.js'
import {MOZILLA_INTERMEDIATE_CIPHERS, renderGateway, renderUpstreams} from '../../src/render/gateway.js'

const base: ManifestInput = {
  version: 1,
  name: 'my-api',
  domain: 'api.example.com',
  services: {
    web: {kind: 'django', replicas: 2},
    api: {kind: 'django', replicas: 1, port: 8001},
    payment: {kind: 'external', url: 'https://payments.example.com'},
  },
  routes: [
    {path: '/', service: 'web'},
    {path: '/secure/', service: 'web', auth: 'basic'},
    {path: '/api2/', service: 'api', auth: 'api-key', rateLimit: {rate: '5r/s', burst: 10}},
    {path: '/payment/', service: 'payment'},
  ],
}

async function render(overrides: Partial<ManifestInput> = {}): Promise<Record<string, string>> {
  const files = await renderGateway(parseManifest({...base, ...overrides}))
  return Object.fromEntries(files.map((file) => [file.path, String(file.content)]))
}

/** The text of the first `<header> { ... }` block, braces balanced. */
function block(text: string, header: string): string {
  const start = text.indexOf(`${header} {`)
  if (start < 0) throw new Error(`no block "${header}"`)
  let depth = 0
  for (let index = text.indexOf('{', start); index < text.length; index++) {
    if (text[index] === '{') depth++
    if (text[index] === '}' && --depth === 0) return text.slice(start, index + 1)
  }

  throw new Error(`unbalanced block "${header}"`)
}

function servers(conf: string): string[] {
  const found: string[] = []
  let rest = conf
  while (/^server \{/m.test(rest)) {
    const body = block(rest.slice(rest.search(/^server \{/m)), 'server')
    found.push(body)
    rest = rest.slice(rest.indexOf(body) + body.length)
  }

  return found
}

/** A location of the server that holds the routes (not the port-80 redirect server). */
function route(conf: string, path: string): string {
  const server = servers(conf).find((body) => body.includes('proxy_pass'))
  if (!server) throw new Error('no routes server')
  return block(server, `location ${path}`)
}

describe('renderGateway', () => {
  it('plans nginx.conf and the conf.d files', async () => {
    expect(Object.keys(await render()).sort()).toEqual([
      'gateway/conf.d/gateway.conf',
      'gateway/conf.d/limits.conf',
      'gateway/conf.d/maps.conf',
      'gateway/conf.d/snippets/errors.conf',
      'gateway/conf.d/snippets/headers.conf',
      'gateway/conf.d/snippets/proxy.conf',
      'gateway/conf.d/upstreams.conf',
      'gateway/nginx.conf',
    ])
  })

  it('writes nginx.conf with a JSON access log', async () => {
    const conf = (await render())['gateway/nginx.conf']!
    for (const line of [
      'user nginx;',
      'worker_processes auto;',
      'server_tokens off;',
      'include mime.types;',
      'include /etc/nginx/conf.d/*.conf;',
    ]) {
      expect(conf).toContain(line)
    }

    // A read-only root: the pid file and temp files go to the gateway's tmpfs.
    expect(conf).toContain('pid /tmp/nginx.pid;')
    expect(conf).toContain('client_body_temp_path /tmp/client_body;')
    // To the container's output, which the engine keeps and caps (json-file, 3 x 10 MB): no file grows.
    expect(conf).toContain('error_log stderr warn;')
    expect(conf).toContain('access_log /dev/stdout gateway_json;')
    expect(conf).not.toContain('/var/log/nginx')
    expect(conf).toContain('log_format gateway_json escape=json')
    for (const variable of [
      '$time_iso8601',
      '$req_id',
      '$remote_addr',
      '$request_method',
      '$request_uri',
      '$status',
      '$body_bytes_sent',
      '$request_time',
      '$upstream_addr',
      '$upstream_status',
      '$upstream_response_time',
      '$host',
      '$http_user_agent',
      '$gateway_service',
    ]) {
      expect(conf).toContain(variable)
    }
  })

  it('renders one location per route, in a TLS server, and a redirect on port 80', async () => {
    const conf = (await render())['gateway/conf.d/gateway.conf']!
    const [catchHttp, catchHttps, http, https, status] = servers(conf)
    // Unknown names go to the catch-all servers: no answer on 80, no handshake on 443.
    expect(catchHttp).toContain('listen 80 default_server;')
    expect(catchHttp).toContain('return 444;')
    expect(catchHttps).toContain('listen 443 ssl default_server;')
    expect(catchHttps).toContain('ssl_reject_handshake on;')
    expect(catchHttps).not.toContain('ssl_certificate')
    expect(http).toContain('listen 80;')
    expect(http).toContain('server_name api.example.com;')
    // The configured domain, never the client's Host.
    expect(http).toContain('return 308 https://api.example.com:8443$request_uri;')
    expect(http).not.toContain('$host')
    const acme = block(http!, 'location ^~ /.well-known/acme-challenge/')
    expect(acme).toContain('root /var/www/acme;')
    expect(acme).toContain('default_type text/plain;')
    expect(acme).toContain('try_files $uri =404;')

    expect(https).toContain('listen 443 ssl;')
    // `http2 on` (NGINX >= 1.25.1), not the deprecated `listen ... http2` that warns on every start.
    expect(https).toMatch(/^ {4}http2 on;$/m)
    expect(https).not.toMatch(/^\s*listen .*http2/m)
    // localhost only for local domains: on a public one it would be a second name anyone can send.
    expect(https).toContain('server_name api.example.com;')
    expect(https).toContain('client_max_body_size 1m;')
    // Route and service are set per location (a server-level set would run again in auth_request).
    expect(https).not.toMatch(/^ {4}set \$gateway_(route|service)/m)
    const locations = [...https!.matchAll(/^ {4}location (\S+) \{/gm)].map((match) => match[1])
    expect(locations.filter((path) => path!.startsWith('/'))).toEqual(['/', '/secure/', '/api2/', '/payment/'])

    expect(status).toContain('listen 127.0.0.1:8081;')
    expect(block(status!, 'location = /healthz')).toContain('return 200 "ok\\n";')
    expect(block(status!, 'location = /nginx_status')).toContain('stub_status;')
  })

  it('omits the port from the redirect when HTTPS is published on 443', async () => {
    const conf = (await render({ports: {http: 80, https: 443}}))['gateway/conf.d/gateway.conf']!
    expect(conf).toContain('return 308 https://api.example.com$request_uri;')
  })

  it('names localhost too for a local domain, and keeps the certificate for an IP domain (no SNI to refuse)', async () => {
    const local = (await render({domain: 'api.localhost'}))['gateway/conf.d/gateway.conf']!
    expect(local).toContain('server_name api.localhost localhost;')
    expect(local).toContain('ssl_reject_handshake on;')
    const ip = (await render({domain: '192.0.2.10'}))['gateway/conf.d/gateway.conf']!
    const [, catchHttps] = servers(ip)
    expect(catchHttps).not.toContain('ssl_reject_handshake')
    expect(catchHttps).toContain('ssl_certificate /etc/nginx/certs/fullchain.pem;')
    expect(catchHttps).toContain('return 444;')
    expect(ip).toContain('server_name 192.0.2.10;')
  })

  it('believes X-Forwarded-For only from trusted proxies, and sets the body size limit from the manifest', async () => {
    const plain = (await render())['gateway/conf.d/gateway.conf']!
    expect(plain).not.toContain('set_real_ip_from')
    const behind = (await render({trustedProxies: ['10.0.0.0/8', '2001:db8::/32'], clientMaxBodySize: '20m'}))[
      'gateway/conf.d/gateway.conf'
    ]!
    expect(behind).toContain('set_real_ip_from 10.0.0.0/8;\nset_real_ip_from 2001:db8::/32;')
    expect(behind).toContain('real_ip_header X-Forwarded-For;')
    expect(behind).toContain('real_ip_recursive on;')
    expect(behind).toContain('client_max_body_size 20m;')
  })

  it('uses the Mozilla intermediate TLS profile and HSTS', async () => {
    const files = await render()
    const conf = files['gateway/conf.d/gateway.conf']!
    expect(conf).toContain('ssl_protocols TLSv1.2 TLSv1.3;')
    expect(conf).toContain(`ssl_ciphers ${MOZILLA_INTERMEDIATE_CIPHERS};`)
    // Guideline 6.0: six ECDHE suites, no DHE (so no ssl_dhparam either).
    expect(MOZILLA_INTERMEDIATE_CIPHERS.split(':')).toHaveLength(6)
    expect(MOZILLA_INTERMEDIATE_CIPHERS).not.toMatch(/(^|:)DHE-/)
    for (const line of [
      'ssl_ecdh_curve X25519MLKEM768:X25519:prime256v1:secp384r1;',
      'ssl_prefer_server_ciphers off;',
      'ssl_session_cache shared:SSL:10m;',
      'ssl_session_timeout 1d;',
    ]) {
      expect(conf).toContain(line)
    }
    // NGINX >= 1.23.2 rotates ticket keys in the shared cache: the generator no longer turns tickets off.
    expect(conf).not.toMatch(/^\s*(ssl_session_tickets|ssl_dhparam)/m)

    expect(conf).toContain('ssl_certificate /etc/nginx/certs/fullchain.pem;')
    expect(conf).toContain('ssl_certificate_key /etc/nginx/certs/privkey.pem;')
    expect(files['gateway/conf.d/snippets/headers.conf']).toContain(
      'add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;',
    )
  })

  it('keeps the prefix for Django services and strips it for external ones', async () => {
    const files = await render()
    const conf = files['gateway/conf.d/gateway.conf']!
    const secure = route(conf, '/secure/')
    expect(secure).toContain('proxy_pass http://web_upstream;')
    expect(secure).toContain('proxy_set_header Host $host;')
    expect(secure).not.toContain('rewrite')

    const payment = route(conf, '/payment/')
    expect(payment).toContain('set $external_payment https://payments.example.com;')
    expect(payment).toContain('rewrite "(?s)^/payment/(.*)$" /$1 break;')
    expect(payment).toContain('proxy_pass $external_payment;')
    expect(payment).toContain('proxy_set_header Host payments.example.com;')
    // The set must come before `rewrite ... break`, which ends the rewrite-module directives.
    expect(payment.indexOf('set $external_payment')).toBeLessThan(payment.indexOf('rewrite "'))
    for (const line of [
      'proxy_ssl_server_name on;',
      'proxy_ssl_name payments.example.com;',
      'proxy_ssl_verify on;',
      'proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;',
      'proxy_ssl_verify_depth 3;',
    ]) {
      expect(payment).toContain(line)
    }

    expect(conf).toContain('resolver 127.0.0.11 valid=30s ipv6=off;')
  })

  it('maps an external URL path and a non-default port', async () => {
    const conf = (
      await render({services: {...base.services, payment: {kind: 'external', url: 'http://pay.internal:8080/v1'}}})
    )['gateway/conf.d/gateway.conf']!
    const payment = route(conf, '/payment/')
    expect(payment).toContain('rewrite "(?s)^/payment/(.*)$" /v1/$1 break;')
    expect(payment).toContain('proxy_set_header Host pay.internal:8080;')
    expect(payment).toContain('proxy_redirect http://pay.internal:8080/v1/ /payment/;')
    expect(payment).not.toContain('proxy_ssl')
  })

  it('sends proxy headers, retries only what NGINX retries safely, and tags responses', async () => {
    const files = await render()
    const proxy = files['gateway/conf.d/snippets/proxy.conf']!
    for (const line of [
      'proxy_http_version 1.1;',
      'proxy_set_header Connection "";',
      'proxy_set_header X-Real-IP $remote_addr;',
      'proxy_set_header X-Forwarded-For $remote_addr;',
      'proxy_set_header Forwarded "";',
      'proxy_set_header X-Forwarded-Ssl "";',
      'proxy_set_header X-Forwarded-Prefix "";',
      'proxy_hide_header X-Content-Type-Options;',
      'proxy_set_header X-Forwarded-Proto $scheme;',
      'proxy_set_header X-Forwarded-Host $host;',
      'proxy_set_header X-Forwarded-Port 8443;',
      'proxy_set_header X-Request-ID $req_id;',
      'proxy_connect_timeout 5s;',
      'proxy_read_timeout 60s;',
      'proxy_send_timeout 60s;',
      'proxy_next_upstream error timeout http_502 http_503 http_504;',
      'proxy_next_upstream_tries 3;',
      'proxy_next_upstream_timeout 10s;',
    ]) {
      expect(proxy).toContain(line)
    }

    expect(proxy).not.toMatch(/^proxy_next_upstream .*non_idempotent/m)
    expect(files['gateway/conf.d/maps.conf']).toContain('map $http_x_request_id $req_id {')

    const conf = files['gateway/conf.d/gateway.conf']!
    for (const path of ['/', '/secure/', '/api2/', '/payment/']) {
      const location = route(conf, path)
      expect(location).toContain('include /etc/nginx/conf.d/snippets/proxy.conf;')
      // A location with its own add_header must repeat the server's (HSTS...): it includes them.
      expect(location).toContain('include /etc/nginx/conf.d/snippets/headers.conf;')
      expect(location).toContain('add_header X-Gateway-Route $gateway_route always;')
      expect(location).not.toContain('X-Gateway-Upstream')
    }
  })

  it('rate-limits every route, with its own zone when it has its own limit', async () => {
    const files = await render({rateLimit: {rate: '20r/s', burst: 40, status: 429}})
    const limits = files['gateway/conf.d/limits.conf']!
    expect(limits).toContain('limit_req_zone $binary_remote_addr zone=global:10m rate=20r/s;')
    expect(limits).toContain('limit_req_zone $binary_remote_addr zone=route_2_api2:10m rate=5r/s;')
    expect(limits).toContain('limit_req_status 429;')
    const names = [...limits.matchAll(/zone=(\w+):/g)].map((match) => match[1])
    expect(new Set(names).size).toBe(names.length)

    const conf = files['gateway/conf.d/gateway.conf']!
    expect(route(conf, '/')).toContain('limit_req zone=global burst=40 nodelay;')
    expect(route(conf, '/api2/')).toContain('limit_req zone=route_2_api2 burst=10 nodelay;')
    expect(files['gateway/conf.d/snippets/errors.conf']).toContain('error_page 429 @rate_limited;')
    expect(block(conf, 'location @rate_limited')).toContain(`return 429 '{"error":"rate limit exceeded"`)
  })

  it('writes burst 0 as NGINX accepts it', async () => {
    const conf = (await render({routes: [{path: '/', service: 'web', rateLimit: {rate: '1r/m', burst: 0}}]}))[
      'gateway/conf.d/gateway.conf'
    ]!
    expect(route(conf, '/')).toContain('limit_req zone=route_0_root nodelay;')
  })

  it('protects basic and api-key routes, checking the key after the rate limiter', async () => {
    const files = await render()
    const conf = files['gateway/conf.d/gateway.conf']!
    const secure = route(conf, '/secure/')
    expect(secure).toContain('auth_basic "my-api restricted";')
    expect(secure).toContain('auth_basic_user_file /etc/nginx/secrets/htpasswd;')

    const api = route(conf, '/api2/')
    expect(api).toContain('auth_request /_gateway/api-key;')
    // No rewrite-phase `if`/`return` in the route: it would answer before limit_req counts the request.
    expect(api).not.toMatch(/^\s*(if|return)\b/m)
    expect(api).toContain('proxy_set_header X-API-Key "";')
    expect(block(conf, 'location = /_gateway/api-key')).toContain('internal;')
    expect(files['gateway/conf.d/maps.conf']).toContain('include /etc/nginx/secrets/api-keys.map;')

    expect(route(conf, '/')).not.toContain('auth_')
  })

  it('checks jwt routes with njs behind auth_request, after the rate limiter', async () => {
    const files = await render({routes: [...base.routes, {path: '/private/', service: 'api', auth: 'jwt'}]})
    const conf = files['gateway/conf.d/gateway.conf']!
    const jwt = route(conf, '/private/')
    expect(jwt).toContain('auth_request /_gateway/jwt;')
    expect(jwt).not.toMatch(/^\s*(if|return)\b/m)
    expect(jwt).toContain('error_page 401 @jwt_required;')
    expect(jwt).toContain('proxy_set_header Authorization "";')
    const check = block(conf, 'location = /_gateway/jwt')
    expect(check).toContain('internal;')
    expect(check).toContain('js_content jwt.verify;')
    const refused = block(conf, 'location @jwt_required')
    expect(refused).toContain('add_header WWW-Authenticate Bearer always;')
    expect(refused).toContain(`return 401 '{"error":"missing or invalid bearer token"`)

    const nginx = files['gateway/nginx.conf']!
    expect(nginx).toMatch(/^load_module modules\/ngx_http_js_module\.so;$/m)
    // load_module belongs to the main context: before events {} and http {}.
    expect(nginx.indexOf('load_module')).toBeLessThan(nginx.indexOf('events {'))
    expect(block(nginx, 'http')).toContain('js_import jwt from /etc/nginx/njs/jwt.js;')
    expect(block(files['gateway/conf.d/maps.conf']!, 'map "" $jwt_secret')).toContain(
      'include /etc/nginx/secrets/jwt-secret.map;',
    )

    const script = files['gateway/njs/jwt.js']!
    expect(script).toContain("require('crypto')")
    expect(script).toContain("createHmac('sha256', key)")
    expect(script).toContain('var LEEWAY_SECONDS = 30;')
    expect(script).toContain('export default {verify};')
    expect(route(conf, '/api2/')).not.toContain('jwt')
  })

  it('caches only the routes with cache, in one bounded zone, with lock, stale answers and X-Cache-Status', async () => {
    const files = await render({
      cache: {keys: '2m', size: '64m'},
      routes: [
        {path: '/', service: 'web', cache: {ttl: '30s'}},
        {path: '/secure/', service: 'web', auth: 'basic'},
      ],
    })
    expect(files['gateway/conf.d/cache.conf']).toContain(
      'proxy_cache_path /var/cache/gateway levels=1:2 keys_zone=gateway_cache:2m max_size=64m inactive=10m use_temp_path=off;',
    )
    const cached = route(files['gateway/conf.d/gateway.conf']!, '/')
    expect(cached).toContain('proxy_cache gateway_cache;')
    expect(cached).toContain('proxy_cache_methods GET HEAD;')
    expect(cached).toContain('proxy_cache_key "$scheme$host$request_uri";')
    expect(cached).toContain('proxy_cache_valid 200 301 404 30s;')
    expect(cached).toContain('proxy_cache_lock on;')
    expect(cached).toContain('proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;')
    expect(cached).toContain('add_header X-Cache-Status $upstream_cache_status always;')
    // Public route: a request with credentials or a cookie neither reads nor fills the cache.
    expect(cached).toContain('proxy_cache_bypass $http_authorization $http_cookie;')
    expect(cached).toContain('proxy_no_cache $http_authorization $http_cookie;')
    expect(route(files['gateway/conf.d/gateway.conf']!, '/secure/')).not.toContain('proxy_cache')
    expect(files['gateway/nginx.conf']).toContain('"cache":"$upstream_cache_status"')
    // No route with auth caches: no njs.
    expect(files['gateway/nginx.conf']).not.toMatch(/load_module|js_import/)
  })

  it('keys cached routes with auth by a hash of the checked credential, after the auth check', async () => {
    const files = await render({
      routes: [
        {path: '/', service: 'web', cache: {ttl: '10s', credentialed: 'share'}},
        {path: '/secure/', service: 'web', auth: 'basic', cache: {ttl: '1m'}},
        {path: '/api2/', service: 'api', auth: 'api-key', cache: {ttl: '1h'}},
      ],
    })
    const conf = files['gateway/conf.d/gateway.conf']!
    expect(route(conf, '/secure/')).toContain(
      'proxy_cache_key "$scheme$host$request_uri $cache_identity_authorization";',
    )
    expect(route(conf, '/api2/')).toContain('proxy_cache_key "$scheme$host$request_uri $cache_identity_api_key";')
    // The credential is the key's business there; only a cookie makes the answer personal beyond it.
    expect(route(conf, '/secure/')).toContain('proxy_cache_bypass $http_cookie;')
    const secure = route(conf, '/secure/')
    expect(secure.indexOf('auth_basic ')).toBeLessThan(secure.indexOf('proxy_cache '))
    // credentialed: share stores answers whatever the request carries.
    expect(route(conf, '/')).not.toContain('proxy_cache_bypass')
    const nginx = files['gateway/nginx.conf']!
    expect(nginx).toContain('load_module modules/ngx_http_js_module.so;')
    expect(nginx).toContain('js_import cache from /etc/nginx/njs/cache.js;')
    expect(nginx).toContain('js_set $cache_identity_authorization cache.authorization;')
    expect(nginx).toContain('js_set $cache_identity_api_key cache.apiKey;')
    expect(files['gateway/njs/cache.js']).toContain("crypto.createHash('sha256')")
  })

  it('loads njs only when some route uses jwt', async () => {
    const files = await render()
    expect(files['gateway/nginx.conf']).not.toMatch(/load_module|js_import/)
    expect(files['gateway/conf.d/maps.conf']).not.toContain('jwt')
    expect(files['gateway/conf.d/gateway.conf']).not.toContain('jwt')
    expect(files['gateway/njs/jwt.js']).toBeUndefined()
  })

  it('keeps the WWW-Authenticate of the jwt check when the rate-limit status is 401 too', async () => {
    const files = await render({rateLimit: {status: 401}, routes: [{path: '/', service: 'web', auth: 'jwt'}]})
    const conf = files['gateway/conf.d/gateway.conf']!
    expect(conf).not.toContain('@jwt_required')
    expect(files['gateway/njs/jwt.js']).toContain("r.headersOut['WWW-Authenticate'] = 'Bearer';")
  })

  it('leaves the api-key map out when no route uses it', async () => {
    const files = await render({routes: [{path: '/', service: 'web'}]})
    expect(files['gateway/conf.d/maps.conf']).not.toContain('api_key')
    expect(files['gateway/conf.d/gateway.conf']).not.toContain('resolver')
  })

  it('answers 404 itself when no route covers "/"', async () => {
    const conf = (await render({routes: [{path: '/api/', service: 'api'}]}))['gateway/conf.d/gateway.conf']!
    expect(route(conf, '/')).toContain('return 404')
  })

  it('serves the routes on port 80 when TLS is off', async () => {
    const files = await render({tls: {mode: 'off'}})
    const conf = files['gateway/conf.d/gateway.conf']!
    const [catchAll, http, status, extra] = servers(conf)
    expect(extra).toBeUndefined()
    expect(catchAll).toContain('listen 80 default_server;')
    expect(catchAll).toContain('return 444;')
    expect(http).toContain('listen 80;')
    expect(http).toContain('location ^~ /.well-known/acme-challenge/')
    expect(http).toContain('location /secure/ {')
    expect(conf).not.toMatch(/^\s*(ssl_|listen 443|return 30[18]|http2)/m)
    expect(status).toContain('listen 127.0.0.1:8081;')
    expect(files['gateway/conf.d/snippets/headers.conf']).not.toContain('Strict-Transport-Security')
    expect(files['gateway/conf.d/snippets/proxy.conf']).toContain('proxy_set_header X-Forwarded-Port 8080;')
  })
})

describe('the metrics profile', () => {
  it('serves stub_status to the exporter on the network only with metrics on; the health listener stays on loopback', async () => {
    const off = servers((await render())['gateway/conf.d/gateway.conf']!)
    expect(off.some((server) => /listen 8082;/.test(server))).toBe(false)
    const on = servers((await render({metrics: {enabled: true}}))['gateway/conf.d/gateway.conf']!)
    const metrics = on.find((server) => /listen 8082;/.test(server))
    expect(metrics).toBeDefined()
    expect(block(metrics!, 'location = /nginx_status')).toContain('stub_status;')
    expect(block(metrics!, 'location /')).toContain('return 404;')
    // Only stub_status there: no health endpoint, no route, no access log of the exporter's scrapes.
    expect(metrics).not.toContain('/healthz')
    expect(metrics).not.toContain('proxy_pass')
    expect(metrics).toContain('access_log off;')
    expect(on.find((server) => server.includes('/healthz'))).toContain('listen 127.0.0.1:8081;')
    expect(on).toHaveLength(off.length + 1)
  })

  it('leaves the Kubernetes export without the listener (it has no exporter)', async () => {
    const manifest = parseManifest({...base, metrics: {enabled: true}})
    const files = await renderGateway(manifest, {
      ports: {http: 8080, https: 8443, status: 8081},
      publicPorts: {http: 80, https: 443},
      resolver: 'kube-dns.kube-system.svc.cluster.local',
      resolverValid: '10s',
      namespace: 'default',
      clusterDomain: 'cluster.local',
      writableDir: '/tmp',
      workerProcesses: 2,
    })
    const conf = String(files.find((file) => file.path === 'gateway/conf.d/gateway.conf')!.content)
    expect(conf).not.toMatch(/listen 8082;/)
  })
})

describe('renderUpstreams', () => {
  const manifest = parseManifest(base)

  const serversOf = (text: string, upstream: string) =>
    [...block(text, `upstream ${upstream}`).matchAll(/server (\S+) /g)].map((match) => match[1])

  it("lists each Django service by its service name in the resolve form: NGINX follows Docker's DNS, no reload", async () => {
    const text = await renderUpstreams(manifest)
    // One server line per service, whatever its replica count (web has 2): no container names.
    expect(block(text, 'upstream web_upstream')).toMatch(
      /\{\s+zone web_upstream 64k;\s+resolver 127\.0\.0\.11 valid=1s ipv6=off;\s+server web:8000 resolve max_fails=\d+ fail_timeout=\d+s;\s+keepalive 16;\s+keepalive_timeout 4s;\s+\}/,
    )
    expect(serversOf(text, 'web_upstream')).toEqual(['web:8000'])
    expect(serversOf(text, 'api_upstream')).toEqual(['api:8001'])
    expect(text).not.toContain('my-api-')
    expect(text).not.toContain('payment')
    // This is the file `init` writes.
    expect((await render())['gateway/conf.d/upstreams.conf']).toBe(text)
  })

  it('writes the reload form for an NGINX image older than 1.27.3: servers without resolve, no resolver', async () => {
    const old = parseManifest({...base, images: {...base.images, nginx: 'nginx:1.26.3-alpine'}} as ManifestInput)
    const text = await renderUpstreams(old)
    expect(block(text, 'upstream web_upstream')).toMatch(
      /\{\s+zone web_upstream 64k;\s+server web:8000 max_fails=3 fail_timeout=10s;\s+keepalive 16;\s+keepalive_timeout 4s;\s+\}/,
    )
    expect(text.replace(/#[^\n]*/g, '')).not.toMatch(/resolve/)
    // The same result when a caller asks for the reload form on a current NGINX (scale's reload path).
    expect(await renderUpstreams(manifest, {}, 'reload')).toBe(text)
  })

  it('takes an explicit replica list, as scale does, and names the other services as before', async () => {
    const text = await renderUpstreams(manifest, {web: ['my-api-web-1', 'my-api-web-3', 'my-api-web-4']})
    expect(serversOf(text, 'web_upstream')).toEqual(['my-api-web-1:8000', 'my-api-web-3:8000', 'my-api-web-4:8000'])
    // Container names are the reload form: looked up once per reload, so no resolve and no resolver.
    expect(block(text, 'upstream web_upstream')).toContain('server my-api-web-4:8000 max_fails=3 fail_timeout=10s;')
    expect(block(text, 'upstream web_upstream')).not.toContain('resolve')
    expect(serversOf(text, 'api_upstream')).toEqual(['api:8001'])
    expect(block(text, 'upstream api_upstream')).toContain('server api:8001 resolve max_fails=3')
    const both = await renderUpstreams(manifest, {web: ['my-api-web-1'], api: ['my-api-api-1', 'my-api-api-2']})
    expect(serversOf(both, 'api_upstream')).toEqual(['my-api-api-1:8001', 'my-api-api-2:8001'])
  })

  it('refuses host names that would break the config, and empty upstreams', async () => {
    await expect(renderUpstreams(manifest, {web: ['x; include /etc/passwd']})).rejects.toThrow(
      /not a valid upstream host/,
    )
    await expect(renderUpstreams(manifest, {web: []})).rejects.toThrow(/no servers/)
  })
})
