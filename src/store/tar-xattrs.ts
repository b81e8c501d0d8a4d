/**
 * tar-stream decodes PAX records as UTF-8, which mangles binary xattr values
 * (security.capability holds arbitrary bytes) and names that are not UTF-8.
 * This scanner watches the raw uncompressed tar bytes (it sits in the diffID
 * tap, upstream of tar-stream) and queues, for each real entry in archive
 * order, the raw `SCHILY.xattr.*` values of its PAX header and its raw PAX
 * `path` and `linkpath` (so the importer can refuse bytes that are not
 * UTF-8 instead of storing U+FFFD). tar-stream emits the same entries in the
 * same order, so the importer shifts one item per entry.
 */

const BLOCK = 512

function parseSize(field: Buffer): number {
  if (field[0] & 0x80) {
    // base-256 (GNU): big-endian, high bit of first byte is the marker
    let n = field[0] & 0x7f
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]
    return n
  }
  const s = field.toString('latin1').replace(/\0.*$/s, '').trim()
  return s === '' ? 0 : parseInt(s, 8)
}

/** Parse PAX records ("%d %s=%s\n") keeping values as bytes. */
export function parsePaxRecords(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  let i = 0
  while (i < buf.length) {
    const sp = buf.indexOf(0x20, i)
    if (sp < 0) break
    const len = parseInt(buf.toString('latin1', i, sp), 10)
    if (!Number.isFinite(len) || len <= 0 || i + len > buf.length) break
    const rec = buf.subarray(sp + 1, i + len - 1) // drop trailing \n
    const eq = rec.indexOf(0x3d)
    if (eq > 0) out.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)))
    i += len
  }
  return out
}

/** What the scanner saw of one real entry's PAX header, as raw bytes. */
export interface RawPax {
  /** xattr name -> raw value. */
  xattrs: Map<string, Buffer>
  path?: Buffer
  linkpath?: Buffer
}

export class RawXattrScanner {
  /** One item per real (non-meta) entry. */
  readonly queue: RawPax[] = []
  private pendingPath: Buffer | undefined
  private pendingLinkpath: Buffer | undefined
  private buf: Buffer = Buffer.alloc(0)
  private skip = 0
  private collecting: { kind: 'pax'; size: number } | undefined
  private pending = new Map<string, Buffer>()
  private paxSize: number | undefined
  private total = 0
  /** Absolute offsets where the current entry's data ends, and its padding. */
  private dataEnd = 0
  private padEnd = 0

  /**
   * Zero bytes missing at the end of the stream when it stopped right after
   * an entry's data, without the padding to 512 (umoci 0.4 writes such
   * layers). 0 when the stream ended on a block boundary or mid-data.
   */
  missingPadding(): number {
    return this.total >= this.dataEnd && this.total < this.padEnd ? this.padEnd - this.total : 0
  }

  push(chunk: Buffer): void {
    this.total += chunk.length
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk
    for (;;) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, this.buf.length)
        this.buf = this.buf.subarray(n)
        this.skip -= n
        if (this.skip > 0) return
      }
      if (this.collecting) {
        const padded = Math.ceil(this.collecting.size / BLOCK) * BLOCK
        if (this.buf.length < padded) return
        const records = parsePaxRecords(this.buf.subarray(0, this.collecting.size))
        this.buf = this.buf.subarray(padded)
        this.collecting = undefined
        for (const [k, v] of records) {
          if (k.startsWith('SCHILY.xattr.')) this.pending.set(k.slice('SCHILY.xattr.'.length), v)
          if (k === 'size') this.paxSize = parseInt(v.toString('latin1'), 10)
          if (k === 'path') this.pendingPath = v
          if (k === 'linkpath') this.pendingLinkpath = v
        }
        continue
      }
      if (this.buf.length < BLOCK) return
      const header = this.buf.subarray(0, BLOCK)
      this.buf = this.buf.subarray(BLOCK)
      if (header.every((b) => b === 0)) continue
      const type = String.fromCharCode(header[156])
      const size = this.paxSize ?? parseSize(header.subarray(124, 136))
      if (type === 'x') {
        this.collecting = { kind: 'pax', size: parseSize(header.subarray(124, 136)) }
        continue
      }
      if (type === 'g' || type === 'L' || type === 'K') {
        this.skip = Math.ceil(parseSize(header.subarray(124, 136)) / BLOCK) * BLOCK
        continue
      }
      this.queue.push({ xattrs: this.pending, path: this.pendingPath, linkpath: this.pendingLinkpath })
      this.pending = new Map()
      this.pendingPath = undefined
      this.pendingLinkpath = undefined
      this.paxSize = undefined
      // As tar-stream does: every entry but a directory is followed by `size` bytes of data.
      const hasData = type !== '5'
      this.skip = hasData ? Math.ceil(size / BLOCK) * BLOCK : 0
      const dataStart = this.total - this.buf.length
      this.dataEnd = dataStart + (hasData ? size : 0)
      this.padEnd = dataStart + this.skip
    }
  }
}
