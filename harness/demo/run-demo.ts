/**
 * `npm run demo`: the main job, end to end, on the embedded demo images.
 * Boots a throwaway systemd, runs a registry inside it, pushes etcd, flannel
 * and engine, installs all three with `sysctr install --system`, starts
 * engine.service with systemctl (systemd pulls in flannel and etcd), prints
 * each unit's state and the order systemd started them in (read over D-Bus),
 * then uninstalls everything and tears the container down.
 */
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { startDemoEnvironment } from '../demo-env'
import { connectSystemd } from '../../src/systemd/dbus-systemd'
import { DEMO_IMAGES } from './images'

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('error: the demo boots a systemd container with systemd-nspawn and must run as root\n')
    return 7
  }
  const repo = checkoutRoot(__dirname)
  const t0 = Date.now()
  const say = (m: string) => process.stdout.write(`[demo ${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}\n`)
  const env = await startDemoEnvironment({ repo, log: say })
  let failed = false
  try {
    for (const name of DEMO_IMAGES) {
      const t = Date.now()
      const r = await env.sysctr(['install', '--system', '--tls-verify=false', env.images[name]])
      process.stdout.write(r.stdout)
      if (r.code !== 0) throw new Error(`sysctr install ${name} failed (exit ${r.code}): ${r.stderr.trim()}`)
      say(`installed ${name} in ${Date.now() - t} ms`)
    }
    say('systemctl start engine.service')
    const start = await env.box.exec(['systemctl', 'start', 'engine.service'], { timeoutMs: 120_000 })
    if (start.code !== 0) throw new Error(`systemctl start engine.service failed: ${start.stderr.trim()}`)

    const systemd = await connectSystemd({ busAddress: env.box.busAddress })
    try {
      const rows = []
      for (const name of DEMO_IMAGES) {
        const s = await systemd.unitState(`${name}.service`)
        rows.push({ unit: `${name}.service`, ...s })
      }
      rows.sort((a, b) => Number(a.activeEnterTimestampMonotonic - b.activeEnterTimestampMonotonic))
      process.stdout.write('\nunit              state            file state  became active (monotonic)\n')
      for (const r of rows) {
        process.stdout.write(
          `${r.unit.padEnd(17)} ${`${r.activeState}/${r.subState}`.padEnd(16)} ${r.unitFileState.padEnd(11)} ${(Number(r.activeEnterTimestampMonotonic) / 1e6).toFixed(3)} s\n`,
        )
      }
      const order = rows.map((r) => r.unit.replace('.service', ''))
      process.stdout.write(`\nstart order (from systemd): ${order.join(' -> ')}\n`)
      if (order.join(',') !== 'etcd,flannel,engine' || rows.some((r) => r.activeState !== 'active')) {
        failed = true
        process.stdout.write('UNEXPECTED: the units did not all become active in dependency order\n')
      }
    } finally {
      await systemd.close()
    }
    const ro = await env.box.exec(['runc', 'exec', 'etcd', '/bin/touch', '/written-by-demo'])
    process.stdout.write(`write inside the etcd container: ${ro.code === 0 ? 'SUCCEEDED (unexpected)' : ro.stderr.trim()}\n`)
    if (ro.code === 0) failed = true
    const du = await env.box.exec(['du', '-sh', '--apparent-size', '/var/lib/sysctr/store'])
    process.stdout.write(`store size: ${du.stdout.trim()}\n\n`)

    for (const name of [...DEMO_IMAGES].reverse()) {
      const r = await env.sysctr(['uninstall', name])
      process.stdout.write(r.stdout)
      if (r.code !== 0) throw new Error(`sysctr uninstall ${name} failed (exit ${r.code}): ${r.stderr.trim()}`)
    }
  } finally {
    await env.stop()
    say('container stopped, work dir removed')
  }
  return failed ? 1 : 0
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
