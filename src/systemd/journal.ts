/**
 * The last lines of a unit's journal, for the messages of a unit that failed
 * to start or to settle: `journalctl -u UNIT -n N --no-pager -q`, as the
 * operator would type it. Read-only; a journal that cannot be read gives no
 * lines (the message still names the journalctl command).
 */
import { runCommand } from '../util/run-command'

export async function lastJournalLines(unit: string, lines = 10): Promise<string[]> {
  try {
    const r = await runCommand('journalctl', ['-u', unit, '-n', String(lines), '--no-pager', '-q'])
    if (r.code !== 0) return []
    return r.stdout.split('\n').filter((l) => l.trim() !== '')
  } catch {
    return []
  }
}
