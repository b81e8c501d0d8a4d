/**
 * What sysctr changes in a rendered unit before it is written, each change
 * reported as a warning (the image's template stays as it is):
 *
 * - A unit that sets no TimeoutStopSec= (in [Service]) gets
 *   `TimeoutStopSec=STOP_TIMEOUT` (default 10 s, values.ts SOFT_DEFAULTS,
 *   `--set STOP_TIMEOUT=N` or a manifest default changes it): a container
 *   whose PID 1 ignores SIGTERM (a shell or `sleep` as PID 1 has no default
 *   action) is then killed after that time instead of systemd's 90 s.
 * - `ExecStart=[/usr]/bin/runc start NAME`, as Atomic's hello-world and
 *   early etcd units have it: with runc 0.x `start` created and ran the
 *   container from the working directory's bundle; runc 1.x `start` only
 *   starts a container created before, so the unit would fail. It is
 *   replaced by $EXEC_START (`runc run --bundle DESTDIR NAME`), what runc
 *   0.x did.
 *
 * - A unit that sets no SyslogIdentifier= (in [Service]) gets
 *   `SyslogIdentifier=NAME`: the container's stdout and stderr reach the
 *   journal through runc, which would tag them `runc[PID]`. It changes only
 *   that tag (SYSLOG_IDENTIFIER of the unit's stdout/stderr streams;
 *   `journalctl -u NAME` matches by unit either way, and a program that
 *   calls syslog() itself keeps its own), so it is safe for any unit.
 *
 * Only the runc 0.x line is reported (a warning): the others are what every
 * unit without them gets (README "The image contract").
 *
 * The text is changed line by line (no re-serialisation), so everything
 * else stays byte for byte as rendered.
 */
export interface AdaptedUnit {
  text: string
  changes: string[]
}

export function adaptUnit(text: string, values: Record<string, string>): AdaptedUnit {
  const lines = text.split('\n')
  const changes: string[] = []
  let section = ''
  let serviceAt = -1
  let hasTimeout = false
  let hasIdentifier = false
  const name = values.NAME ?? ''
  const legacyStart = new RegExp(`^ExecStart=\\s*(?:/usr)?/?(?:bin/)?runc\\s+start\\s+["']?${escapeRe(name)}["']?\\s*$`)
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim()
    const m = /^\[(.+)\]$/.exec(l)
    if (m) {
      section = m[1]!
      if (section === 'Service' && serviceAt < 0) serviceAt = i
      continue
    }
    if (section !== 'Service') continue
    if (/^(TimeoutStopSec|TimeoutSec)\s*=/.test(l)) hasTimeout = true
    if (/^SyslogIdentifier\s*=/.test(l)) hasIdentifier = true
    if (name && legacyStart.test(l) && values.EXEC_START) {
      lines[i] = `ExecStart=${values.EXEC_START}`
      changes.push(`unit: "${l}" is runc 0.x's create-and-run; written as "ExecStart=${values.EXEC_START}" (runc 1.x start only starts a created container)`)
    }
  }
  if (serviceAt >= 0 && !hasIdentifier && name) lines.splice(serviceAt + 1, 0, `SyslogIdentifier=${name}`)
  if (serviceAt >= 0 && !hasTimeout && values.STOP_TIMEOUT) {
    const secs = values.STOP_TIMEOUT
    lines.splice(serviceAt + 1, 0, `TimeoutStopSec=${/^\d+$/.test(secs) ? `${secs}s` : secs}`)
  }
  return { text: lines.join('\n'), changes }
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
