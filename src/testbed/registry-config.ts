/**
 * The config.yml for Debian's docker-registry (the reference distribution
 * registry) as the tests and the demo run it: filesystem storage in a temp
 * dir, one loopback address, no access log, optional htpasswd auth.
 */
export function registryConfig(opts: { addr: string; storageDir: string; htpasswdFile?: string }): string {
  const auth = opts.htpasswdFile ? `auth:\n  htpasswd:\n    realm: sysctr-test\n    path: ${opts.htpasswdFile}\n` : ''
  return `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${opts.storageDir}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: ${opts.addr}
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
${auth}`
}
