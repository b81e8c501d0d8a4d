/**
 * `--root DIR` for the verbs that read or change the store (images, fsck):
 * the store of the OS tree at DIR (DIR/var/lib/sysctr/store), as install,
 * uninstall and containers list take it (README "Composing a root").
 */
import { Flags } from '@oclif/core'

export const storeRootFlag = Flags.string({ description: 'work on the store of the OS tree at DIR (DIR/var/lib/sysctr/store; see README "Composing a root")' })
