/**
 * Flags of the verbs that render and (re)start a container: --strict (a
 * --set key no template uses is an error) and --settle (how long a started
 * unit is watched; systemd/settle.ts).
 */
import { Flags } from '@oclif/core'
import { DEFAULT_SETTLE_SECONDS, settleMs } from '../systemd/settle'

export const strictFlag = Flags.boolean({
  description: 'refuse (exit 2) a --set KEY that no template of the image uses, instead of warning',
  default: false,
})

export const settleFlag = Flags.string({
  description: `after starting the unit, watch it for SECONDS; if it fails, stops or restarts meanwhile, exit 8 with its last journal lines (default ${DEFAULT_SETTLE_SECONDS}, or $SYSCTR_SETTLE_TIME; 0: only the start job's result)`,
  helpValue: 'SECONDS',
})

/** The settle time in ms from --settle, else $SYSCTR_SETTLE_TIME, else the default. */
export function settleFlagValue(f: { settle?: string }): number {
  return settleMs(f.settle)
}
