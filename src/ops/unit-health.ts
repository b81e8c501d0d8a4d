/**
 * After install --now, update and rollback start or restart a unit: watch it
 * for the settle time (systemd/settle.ts) and, when it fails or when its job
 * did, put the last journal lines in front of the operator (a warning, so
 * --quiet keeps it) together with the journalctl command for the rest.
 */
import { SystemdError } from '../errors'
import { watchUnit, type SettleFailure } from '../systemd/settle'
import type { Systemd } from '../systemd/systemd'
import type { OpsContext } from './context'

export const JOURNAL_LINES = 10

/** Warn with the unit's last journal lines (when the context can read a journal); returns them. */
export async function showJournal(ctx: Pick<OpsContext, 'journal' | 'reporter'>, unit: string): Promise<string[]> {
  const lines = ctx.journal ? await ctx.journal(unit, JOURNAL_LINES).catch(() => []) : []
  if (lines.length > 0) ctx.reporter.warn(`last ${lines.length} journal lines of ${unit} (journalctl -u ${unit} -n ${JOURNAL_LINES}):\n${lines.map((l) => `  ${l}`).join('\n')}`)
  return lines
}

/**
 * Watch `unit` for `ms`; undefined if it stayed up. On trouble: the journal
 * lines are shown and a SystemdError (exit 8) with `code` is returned whose
 * message is `lead` + what happened.
 */
export async function settleCheck(
  ctx: Pick<OpsContext, 'journal' | 'reporter'>,
  systemd: Pick<Systemd, 'unitState'>,
  unit: string,
  ms: number | undefined,
  code: string,
  lead: string,
  hint: string,
): Promise<SystemdError | undefined> {
  const f: SettleFailure | undefined = await watchUnit(systemd, unit, ms ?? 0)
  if (!f) return undefined
  const journal = await showJournal(ctx, unit)
  const secs = Math.round((ms ?? 0) / 100) / 10
  return new SystemdError(code, `${lead}${unit} ${f.why} within ${secs} s (settle time)`, {
    hint,
    data: { unit, activeState: f.state.activeState, subState: f.state.subState, result: f.state.result, journal },
  })
}
