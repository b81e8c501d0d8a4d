/**
 * Errors and the exit-code table.
 *
 * One base class, SysctrError, with a stable `code`, an `exitCode` from the
 * table below and an optional `hint`. A subclass exists only where the exit
 * code differs. Callers branch on class or `code`, never on message text.
 *
 * Each layer that catches an error and rethrows adds, in lower case, what it
 * was doing (`withContext`): the CLI prints the chain once, e.g.
 *   error: installing etcd: pulling layer sha256:3f2a…: digest mismatch (expected …, got …)
 *   hint: …
 *
 * Exit codes (documented in README.md, stable):
 *   0  success
 *   1  internal error (a bug in sysctr: please report it)
 *   2  usage: bad flags, bad image reference, bad name, bad --set value
 *   3  not found: image, tag, container or deployment does not exist
 *   4  conflict: a container of that name exists, a lock is held, a file sysctr did not write is in the way
 *   5  registry or network: unreachable, refused, authentication, unexpected status
 *   6  content rejected: digest or size mismatch, bad manifest or media type, unsafe layer, bad template/config
 *   7  host: filesystem or permission problem, missing runtime, cross-device checkout,
 *      a full (host.enospc) or read-only (host.erofs) filesystem, a damaged record (record.damaged)
 *   8  systemd: D-Bus unreachable, a job failed, a unit did not start
 *   9  trust: the signature policy (containers-policy.json) rejects the image: unsigned, bad or foreign signature, a `reject` scope
 */

export const ExitCode = {
  ok: 0,
  internal: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  registry: 5,
  content: 6,
  host: 7,
  systemd: 8,
  trust: 9,
} as const
export type ExitCodeName = keyof typeof ExitCode

export interface ErrorOptions {
  hint?: string
  cause?: unknown
  /** Structured data for --json output and tests (expected/found, paths, ...). */
  data?: Record<string, unknown>
}

export class SysctrError extends Error {
  readonly code: string
  readonly exitCode: number
  hint?: string
  readonly data?: Record<string, unknown>
  /** What the callers were doing, outermost first ("installing etcd", "pulling layer …"). */
  readonly context: string[] = []

  constructor(code: string, message: string, exitCode: number = ExitCode.internal, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = new.target.name
    this.code = code
    this.exitCode = exitCode
    this.hint = opts.hint
    this.data = opts.data
  }

  /** The one line the CLI prints: context chain, then the message. */
  get fullMessage(): string {
    return [...this.context, this.message].join(': ')
  }

  toJSON(): { code: string; message: string; exitCode: number; hint?: string; data?: Record<string, unknown> } {
    return { code: this.code, message: this.fullMessage, exitCode: this.exitCode, hint: this.hint, data: this.data }
  }
}

export class UsageError extends SysctrError {
  constructor(code: string, message: string, opts?: ErrorOptions) {
    super(code, message, ExitCode.usage, opts)
  }
}
export class NotFoundError extends SysctrError {
  constructor(code: string, message: string, opts?: ErrorOptions) {
    super(code, message, ExitCode.notFound, opts)
  }
}
export class ConflictError extends SysctrError {
  constructor(code: string, message: string, opts?: ErrorOptions) {
    super(code, message, ExitCode.conflict, opts)
  }
}
export class RegistryError extends SysctrError {
  constructor(code: string, message: string, opts?: ErrorOptions) {
    super(code, message, ExitCode.registry, opts)
  }
}
export class ContentError extends SysctrError {
  constructor(code: string, message: string, opts?: ErrorOptions) {
    super(code, message, ExitCode.content, opts)
  }
}
export class HostError extends SysctrError {
  constructor(code: string, message: string, opts?: ErrorOptions) {
    super(code, message, ExitCode.host, opts)
  }
}
export class TrustError extends SysctrError {
  constructor(code: string, message: string, opts: ErrorOptions = {}) {
    super(code, message, ExitCode.trust, opts)
  }
}
export class SystemdError extends SysctrError {
  constructor(code: string, message: string, opts?: ErrorOptions) {
    super(code, message, ExitCode.systemd, opts)
  }
}

/**
 * Turn anything thrown into a SysctrError. Node system errors (ENOENT, EACCES,
 * ENOSPC, ...) become HostError with the syscall and path named; anything else
 * is an internal error (exit 1: a bug).
 */
export function toSysctrError(err: unknown): SysctrError {
  if (err instanceof SysctrError) return err
  const e = err as NodeJS.ErrnoException & { dest?: string }
  if (e && typeof e === 'object' && typeof e.code === 'string' && typeof e.syscall === 'string') {
    const where = e.path ? ` ${e.path}${e.dest ? ` -> ${e.dest}` : ''}` : ''
    const what =
      e.code === 'ENOSPC' ? 'no space left on device' : e.code === 'EROFS' ? 'read-only file system' : e.code === 'EACCES' || e.code === 'EPERM' ? 'permission denied' : e.code
    const denied = e.code === 'EACCES' || e.code === 'EPERM'
    const hint = denied ? `sysctr needs root for the system's containers and store (or --root DIR)${e.path ? `; check the owner and mode of ${e.path}` : ''}` : undefined
    return new HostError(`host.${e.code.toLowerCase()}`, `${e.syscall}${where}: ${what}`, { cause: err, ...(hint ? { hint } : {}) })
  }
  const message = err instanceof Error ? err.message : String(err)
  return new SysctrError('internal', message, ExitCode.internal, { cause: err })
}

/** Prefix what the caller was doing (lower case), keeping class, code and exit code. */
export function withContext(err: unknown, doing: string): SysctrError {
  const e = toSysctrError(err)
  e.context.unshift(doing)
  return e
}

/** Run `fn`, adding `doing` to any error it throws. */
export async function doing<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw withContext(err, what)
  }
}
