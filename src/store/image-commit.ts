/**
 * Image commit: merge layer trees, in order, into one whiteout-free tree.
 *
 * For each layer, its tree is applied onto the merged tree of the layers
 * below: a whiteout removes the lower entry; a dir merges into a lower dir
 * (unless opaque, or the lower entry is not a dir: then it replaces it); an
 * implicit dir (not in the tar) keeps the lower dir's metadata; any other
 * entry replaces the lower one (file <-> dir replacement included). A
 * {type:'hardlink'} entry is resolved against the merged tree of the layers
 * below (where the tar's link target lived; symlinks on the way are followed
 * inside the image root) and becomes a copy of that entry:
 * the same file object, so the same inode at checkout.
 *
 * Unchanged subtrees are kept by digest: a dir the layer does not touch is
 * never read, and (lower tree, layer tree) pairs are memoised, so merging is
 * proportional to what the layers change. The result is content-addressed,
 * so the same layers always give the same commit.
 */
import { resolveInRoot, RootWalker } from '../checkout/safe-path'
import { ContentError } from '../errors'
import { DEFAULT_DIR_META, DirMeta, dirMetaOf, RootMeta, Tree, TreeEntry } from './tree'

export interface TreeIO {
  readTree(hex: string, layer: boolean): Promise<Tree>
  writeTree(tree: Tree): Promise<string>
}

export async function mergeLayers(io: TreeIO, layerRoots: RootMeta[]): Promise<RootMeta> {
  let merged: RootMeta | undefined
  for (const layer of layerRoots) {
    const memo = new Map<string, Promise<string>>()
    const lowerRoot = merged
    const resolveLink = async (target: string): Promise<TreeEntry> => {
      if (lowerRoot) {
        // Symlinks on the way are followed inside the root (checkout/safe-path.ts resolveInRoot).
        const walker: RootWalker<TreeEntry> = {
          root: { type: 'dir', ...lowerRoot },
          child: async (dir, name) => (dir.type === 'dir' ? (await io.readTree(dir.tree, false)).entries[name] : undefined),
          isDir: (e) => e.type === 'dir',
          symlinkTarget: (e) => (e.type === 'symlink' ? e.target : undefined),
        }
        const r = await resolveInRoot(walker, target.split('/'), target)
        if ('found' in r && r.found.type !== 'dir') return r.found
      }
      throw new ContentError('content.hardlink-target-missing', `hardlink to ${JSON.stringify(target)}: no such file in this or a lower layer`, {
        data: { target },
      })
    }
    const mergeDir = (lowerHex: string | undefined, layerHex: string): Promise<string> => {
      const key = `${lowerHex ?? '-'}:${layerHex}`
      let p = memo.get(key)
      if (!p) {
        p = doMerge(lowerHex, layerHex)
        memo.set(key, p)
      }
      return p
    }
    const doMerge = async (lowerHex: string | undefined, layerHex: string): Promise<string> => {
      const L = await io.readTree(layerHex, true)
      const out: Record<string, TreeEntry> = lowerHex ? { ...(await io.readTree(lowerHex, false)).entries } : {}
      for (const name of Object.keys(L.entries)) {
        const le = L.entries[name]
        const me = out[name]
        switch (le.type) {
          case 'whiteout':
            delete out[name]
            break
          case 'dir': {
            const lowerDir = me?.type === 'dir' ? me : undefined
            const tree = await mergeDir(le.opaque ? undefined : lowerDir?.tree, le.tree)
            const meta: DirMeta = le.implicit ? (lowerDir ? dirMetaOf(lowerDir) : DEFAULT_DIR_META) : dirMetaOf(le)
            out[name] = { type: 'dir', tree, ...meta }
            break
          }
          case 'hardlink':
            out[name] = await resolveLink(le.target)
            break
          default:
            out[name] = le
        }
      }
      return io.writeTree({ entries: out })
    }
    const tree = await mergeDir(merged?.tree, layer.tree)
    const meta: DirMeta = layer.implicit ? (merged ? dirMetaOf(merged) : DEFAULT_DIR_META) : dirMetaOf(layer)
    merged = { tree, ...meta }
  }
  if (!merged) merged = { tree: await io.writeTree({ entries: {} }), ...DEFAULT_DIR_META }
  return merged
}
