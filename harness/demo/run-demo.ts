/**
 * `npm run demo` (`bash scripts/demo`): the main job, end to end, on real
 * daemons. Builds the real images (Debian's etcd 3.4, a flannel stand-in
 * on the real etcdctl, Debian's dockerd 20.10; harness/daemons), boots a
 * throwaway systemd, runs a registry inside it and pushes the three there
 * (harness/demo/real-env.ts). Then, inside that systemd:
 *
 * 1. `sysctr install --system` of each image, which refuses (exit 6) and
 *    prints on its `hint:` line the `--grant` flags for what the image asks
 *    beyond the default grant; the demo shows that line and installs again
 *    with exactly those flags;
 * 2. puts flannel's network config into etcd through the etcdctl etcd's
 *    image put on the host (flannel reads it when it starts, so etcd is
 *    started once for that and stopped again; the key stays in etcd's data
 *    dir on the host);
 * 3. `systemctl start engine.service`: systemd pulls in flannel and etcd;
 *    prints each unit's state and the order systemd recorded (over D-Bus),
 *    an etcd round trip through the host etcdctl, flannel's subnet.env and
 *    the engine's answer over its socket (server version, bridge subnet);
 * 4. a write inside the etcd container (refused: read-only root), then
 *    uninstalls all three and tears the box down.
 * Exits 1 if anything is not as expected.
 */
import { existsSync, promises as fsp } from 'node:fs'
import { dirname, join } from 'node:path'
import { connectSystemd } from '../../src/systemd/dbus-systemd'
import type { UnitState } from '../../src/systemd/systemd'
import { grantFlagsFrom } from '../grant-flags'
import { DEBS_IN_CONTAINER, ENGINE_SOCKET, ETCDCTL, FLANNEL_NETWORK_CONFIG, FLANNEL_NETWORK_KEY, REAL_IMAGES, startRealEnvironment } from './real-env'

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('error: the demo boots a systemd container with systemd-nspawn and must run as root\n')
    return 7
  }
  const repo = checkoutRoot(__dirname)
  const t0 = Date.now()
  const say = (m: string) => process.stdout.write(`[demo ${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}\n`)
  const out = (m: string) => process.stdout.write(`${m}\n`)
  const problems: string[] = []
  const expect = (ok: boolean, what: string) => {
    if (!ok) {
      problems.push(what)
      out(`UNEXPECTED: ${what}`)
    }
    return ok
  }

  const env = await startRealEnvironment({ repo, log: say })
  const sh = (argv: string[], timeoutMs = 60_000) => env.box.exec(argv, { timeoutMs })
  const etcdctl = (args: string[]) => env.box.exec([ETCDCTL, '--dial-timeout=2s', ...args], { env: { ETCDCTL_API: '3' } })
  const docker = (args: string[]) => env.box.exec([`${DEBS_IN_CONTAINER}/usr/bin/docker`, '--host', ENGINE_SOCKET, ...args])
  const systemctl = async (verb: string, unit: string) => {
    const r = await sh(['systemctl', verb, unit])
    if (r.code !== 0) {
      const journal = (await sh(['journalctl', '--no-pager', '-n', '30', '-o', 'cat', '-u', unit])).stdout
      throw new Error(`systemctl ${verb} ${unit} failed (exit ${r.code}): ${r.stderr.trim()}\n${journal}`)
    }
  }
  const tReady = Date.now()
  try {
    for (const name of REAL_IMAGES) {
      const ref = env.images[name]
      const t = Date.now()
      out(`\n$ sysctr install --system --tls-verify=false ${ref}`)
      const refused = await env.sysctr(['install', '--system', '--tls-verify=false', ref])
      // The refusal as printed: the error line, what the image asks beyond the default grant, the hint with the flags.
      for (const l of refused.stderr.trim().split('\n')) out(`  ${l}`)
      out(`  (exit ${refused.code})`)
      if (!expect(refused.code === 6, `install ${name} without grants exited ${refused.code}, not 6 (refused)`)) {
        if (refused.code === 0) continue
        throw new Error(`sysctr install ${name} failed (exit ${refused.code}): ${refused.stderr.trim()}`)
      }
      const grants = grantFlagsFrom(refused.stderr)
      expect(grants.length > 0, `the refusal of ${name} printed no --grant flags`)
      const shown = grants.map((g) => (/^[\w:/.,=@+-]+$/.test(g) ? g : `'${g}'`)).join(' ')
      out(`$ sysctr install --system --tls-verify=false ${shown} ${ref}`)
      const r = await env.sysctr(['install', '--system', '--tls-verify=false', ...grants, ref])
      for (const l of r.stdout.trim().split('\n')) out(`  ${l}`)
      if (r.code !== 0) throw new Error(`sysctr install ${name} with ${grants.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`)
      say(`installed ${name} (refusal + install: ${Date.now() - t} ms)`)
    }
    expect(existsSync(env.box.hostPath(ETCDCTL)), `etcd's image did not put ${ETCDCTL} on the host`)

    out('')
    say(`flannel reads its network config from etcd when it starts: start etcd.service once, put ${FLANNEL_NETWORK_KEY} through the host's ${ETCDCTL}, stop etcd again (the key stays in /var/lib/etcd)`)
    await systemctl('start', 'etcd.service')
    const put = await etcdctl(['put', FLANNEL_NETWORK_KEY, FLANNEL_NETWORK_CONFIG])
    out(`$ etcdctl put ${FLANNEL_NETWORK_KEY} '${FLANNEL_NETWORK_CONFIG}'\n  ${put.stdout.trim() || put.stderr.trim()}`)
    expect(put.code === 0 && put.stdout.trim() === 'OK', 'putting the flannel network config into etcd failed')
    await systemctl('stop', 'etcd.service')

    say('systemctl start engine.service (Requires=flannel.service, which Requires=etcd.service)')
    const tStart = Date.now()
    await systemctl('start', 'engine.service')
    say(`engine.service started (${Date.now() - tStart} ms)`)

    const systemd = await connectSystemd({ busAddress: env.box.busAddress })
    try {
      const rows: Array<UnitState & { unit: string }> = []
      for (const name of REAL_IMAGES) rows.push({ unit: `${name}.service`, ...(await systemd.unitState(`${name}.service`)) })
      const st = Object.fromEntries(rows.map((r) => [r.unit, r]))
      rows.sort((a, b) => Number(a.activeEnterTimestampMonotonic - b.activeEnterTimestampMonotonic))
      out('\nunit              state            file state  left inactive  became active (monotonic)')
      for (const r of rows) {
        const sec = (v: bigint) => `${(Number(v) / 1e6).toFixed(3)} s`
        out(`${r.unit.padEnd(17)} ${`${r.activeState}/${r.subState}`.padEnd(16)} ${r.unitFileState.padEnd(11)} ${sec(r.inactiveExitTimestampMonotonic).padEnd(14)} ${sec(r.activeEnterTimestampMonotonic)}`)
      }
      const order = rows.map((r) => r.unit.replace('.service', ''))
      out(`\nstart order (from systemd): ${order.join(' -> ')}`)
      expect(rows.every((r) => r.activeState === 'active'), 'not all three units are active')
      expect(order.join(',') === REAL_IMAGES.join(','), `start order ${order.join(',')}, not ${REAL_IMAGES.join(',')}`)
      // After=: each was active before the next one even left "inactive".
      expect(st['etcd.service']!.activeEnterTimestampMonotonic <= st['flannel.service']!.inactiveExitTimestampMonotonic, 'flannel started before etcd was active')
      expect(st['flannel.service']!.activeEnterTimestampMonotonic <= st['engine.service']!.inactiveExitTimestampMonotonic, 'the engine started before flannel was active')
    } finally {
      await systemd.close()
    }

    const value = `hello from the host at ${new Date().toISOString()}`
    const p = await etcdctl(['put', '/sysctr/demo', value])
    const g = await etcdctl(['get', '--print-value-only', '/sysctr/demo'])
    out(`\netcd round trip through the host's ${ETCDCTL}:\n$ etcdctl put /sysctr/demo '${value}'\n  ${p.stdout.trim() || p.stderr.trim()}\n$ etcdctl get --print-value-only /sysctr/demo\n  ${g.stdout.trim() || g.stderr.trim()}`)
    expect(p.stdout.trim() === 'OK' && g.stdout.trim() === value, 'the etcd round trip did not return the value put')

    const subnetEnv = await fsp.readFile(env.box.hostPath('/run/flannel/subnet.env'), 'utf8').catch(() => '')
    out(`\nflannel's /run/flannel/subnet.env:\n${subnetEnv.trim().replace(/^/gm, '  ')}`)
    const flannel = Object.fromEntries(subnetEnv.trim().split('\n').map((l) => l.split('=', 2)))
    expect(/^10\.40\.\d+\.1\/24$/.test(flannel.FLANNEL_SUBNET ?? ''), `flannel's FLANNEL_SUBNET is '${flannel.FLANNEL_SUBNET}', not a /24 of 10.40.0.0/16`)
    const lease = await etcdctl(['get', '--prefix', '--keys-only', '/atomic.io/network/subnets/'])
    out(`flannel's lease in etcd: ${lease.stdout.trim().split('\n').filter(Boolean).join(', ')}`)

    const v = await docker(['version', '--format', '{{.Server.Version}}'])
    const net = await docker(['network', 'inspect', 'bridge', '--format', '{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}'])
    const [subnet, gateway] = net.stdout.trim().split(' ')
    out(`\nthe engine over its socket (${ENGINE_SOCKET}):`)
    out(`$ docker version --format '{{.Server.Version}}'\n  ${v.stdout.trim() || v.stderr.trim()}`)
    out(`$ docker network inspect bridge  (IPAM subnet, gateway)\n  ${net.stdout.trim() || net.stderr.trim()}`)
    expect(/^20\.10\./.test(v.stdout.trim()), `docker version answered '${v.stdout.trim() || v.stderr.trim()}', not 20.10.x`)
    const lenOf = (cidr: string | undefined) => cidr?.split('/')[1]
    const bridgeIsLease = `${gateway}/${lenOf(subnet)}` === flannel.FLANNEL_SUBNET
    out(`bridge ${subnet} (gateway ${gateway}) ${bridgeIsLease ? '=' : '!='} flannel's lease ${flannel.FLANNEL_SUBNET}`)
    expect(bridgeIsLease, "the engine's bridge is not on flannel's subnet")

    const ro = await sh(['runc', 'exec', 'etcd', '/usr/bin/etcdctl', 'snapshot', 'save', '/written-by-demo.db'])
    const roMsg = (ro.stderr.trim() || ro.stdout.trim()).split('\n').pop()
    out(`\nwrite inside the etcd container (runc exec etcd etcdctl snapshot save /written-by-demo.db):\n  ${ro.code === 0 ? 'SUCCEEDED' : roMsg}`)
    expect(ro.code !== 0 && /read-only file system/i.test(ro.stderr + ro.stdout), "a write to the etcd container's root was not refused as read-only")
    const du = await sh(['du', '-sh', '--apparent-size', '/var/lib/sysctr/store'])
    out(`store size: ${du.stdout.trim()}\n`)

    for (const name of [...REAL_IMAGES].reverse()) {
      const r = await env.sysctr(['uninstall', name])
      out(`$ sysctr uninstall ${name}\n  ${r.stdout.trim().split('\n').join('\n  ')}`)
      if (r.code !== 0) throw new Error(`sysctr uninstall ${name} failed (exit ${r.code}): ${r.stderr.trim()}`)
    }
    const left = await sh(['sh', '-c', `ls /etc/systemd/system/etcd.service /etc/systemd/system/flannel.service /etc/systemd/system/engine.service ${ETCDCTL} 2>/dev/null; ls /var/lib/sysctr/containers 2>/dev/null`])
    expect(left.stdout.trim() === '', `left behind after uninstall: ${left.stdout.trim().split('\n').join(', ')}`)
  } finally {
    await env.stop()
    say('container stopped, work dir removed')
  }
  const after = ((Date.now() - tReady) / 1000).toFixed(1)
  out(`\ntotal ${((Date.now() - t0) / 1000).toFixed(1)} s (images built, box booted, registry filled in ${((tReady - t0) / 1000).toFixed(1)} s; installs to teardown ${after} s)`)
  if (problems.length) {
    out(`FAILED: ${problems.length} thing(s) not as expected:\n- ${problems.join('\n- ')}`)
    return 1
  }
  out('OK: everything as expected')
  return 0
}

/** The sysctr checkout holding `dir` (dist-harness/harness/demo when built, harness/demo as source). */
function checkoutRoot(dir: string): string {
  for (let d = dir; d !== dirname(d); d = dirname(d)) {
    if (existsSync(join(d, 'bin', 'sysctr')) && existsSync(join(d, 'package.json'))) return d
  }
  throw new Error(`no sysctr checkout (bin/sysctr) above ${dir}`)
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`error: ${err.message}\n`)
    process.exit(1)
  },
)
