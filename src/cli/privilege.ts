/**
 * Who may run a command: the one place that decides (a rootless `--user`
 * command builds its own context and is not checked here). System mode (no --root DIR) reads and writes
 * /var/lib/sysctr, /etc/systemd/system and the system bus: it needs root, and
 * a command says so in one line (exit 7, host.needs-root) before it touches
 * anything, instead of failing half-way on EACCES or, worse, reading an
 * unreadable directory as empty.
 */
import { HostError } from '../errors'

export interface PrivilegeInput {
  /** The command as the user types it ("containers list"). */
  command: string
  /** --root DIR: work on an OS tree, no root needed (the tree's own permissions apply). */
  root?: string
  /** Defaults to process.geteuid(). */
  euid?: number
}

/** The hint every permission problem on sysctr's own paths ends with. */
export const NEEDS_ROOT_HINT = 'run it as root (sudo sysctr ...), add --user to work on your own containers (README "User mode"), or pass --root DIR to work on an OS tree'

/** Throw host.needs-root (exit 7) unless the caller may use the system mode. */
export function requireRoot(input: PrivilegeInput): void {
  if (input.root) return
  const euid = input.euid ?? (typeof process.geteuid === 'function' ? process.geteuid() : 0)
  if (euid === 0) return
  throw new HostError('host.needs-root', `sysctr ${input.command} needs root (or --user for your own containers, or --root DIR)`, {
    hint: NEEDS_ROOT_HINT,
    data: { euid },
  })
}
