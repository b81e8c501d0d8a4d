/**
 * A pass-through Transform that hashes and counts what flows through it and
 * refuses to finish when the bytes are not the expected ones.
 *
 * Invariant: the stream never emits 'end' for bad bytes. It fails with
 * ContentError `content.size-mismatch` as soon as more bytes than `size`
 * arrive, and in flush() when there were fewer, or `content.digest-mismatch`
 * (data {expected, found}) when the hash differs. Consumers commit nothing
 * before 'end'.
 */
import { createHash, Hash } from 'node:crypto'
import { Readable, Transform, TransformCallback } from 'node:stream'
import { ContentError } from '../errors'
import type { Digest } from '../oci/types'
import { digestAlgorithm, digestProblem } from '../reference/digest'

export interface DigestStreamExpectation {
  digest: Digest
  /** Expected byte count; omit when unknown. */
  size?: number
  /** Names the content in errors, e.g. `blob sha256:3f2a…`; default `blob <digest>`. */
  what?: string
}

/** What a stream verifies (see `verifiedAs`). */
export interface StreamVerification {
  digest: Digest
  size: number
}

const VERIFIES = Symbol('sysctr.verifies')

/**
 * Declare that `stream` fails (emits an error, never 'end') unless its bytes
 * are exactly `v` (digest and size), as a DigestStream does, so a consumer
 * may skip hashing the same bytes again. Only for streams that really do
 * (a DigestStream, or a pass-through that forwards a DigestStream's error
 * and ends only when it ended).
 */
export function markVerified<S extends Readable>(stream: S, v: StreamVerification | undefined): S {
  if (v) (stream as unknown as Record<symbol, StreamVerification>)[VERIFIES] = { digest: v.digest, size: v.size }
  return stream
}

/** What `stream` was declared to verify (markVerified), if anything. */
export function verifiedAs(stream: Readable): StreamVerification | undefined {
  return (stream as unknown as Record<symbol, StreamVerification | undefined>)[VERIFIES]
}

export class DigestStream extends Transform {
  readonly expected: Digest
  readonly expectedSize?: number
  private readonly hash: Hash
  private readonly what: string
  private count = 0

  constructor(expect: DigestStreamExpectation) {
    super()
    const problem = digestProblem(expect.digest)
    if (problem) {
      throw new ContentError('content.bad-digest', `cannot verify ${expect.what ?? 'blob'}: ${problem}`, { data: { digest: expect.digest } })
    }
    this.expected = expect.digest
    this.expectedSize = expect.size
    this.what = expect.what ?? `blob ${expect.digest}`
    this.hash = createHash(digestAlgorithm(expect.digest))
    if (expect.size !== undefined) markVerified(this, { digest: expect.digest, size: expect.size })
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.count
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length
    if (this.expectedSize !== undefined && this.count > this.expectedSize) {
      cb(this.sizeError(`at least ${this.count} bytes`))
      return
    }
    this.hash.update(chunk)
    cb(null, chunk)
  }

  override _flush(cb: TransformCallback): void {
    if (this.expectedSize !== undefined && this.count !== this.expectedSize) {
      cb(this.sizeError(`${this.count} bytes`))
      return
    }
    const found = `${digestAlgorithm(this.expected)}:${this.hash.digest('hex')}`
    if (found !== this.expected) {
      cb(
        new ContentError('content.digest-mismatch', `${this.what}: digest mismatch (expected ${this.expected}, got ${found})`, {
          data: { expected: this.expected, found },
        }),
      )
      return
    }
    cb()
  }

  private sizeError(got: string): ContentError {
    return new ContentError('content.size-mismatch', `${this.what}: size mismatch (expected ${this.expectedSize} bytes, got ${got})`, {
      data: { expected: this.expectedSize, found: this.count },
    })
  }
}

export function createDigestStream(expect: DigestStreamExpectation): DigestStream {
  return new DigestStream(expect)
}
