/**
 * Image verbs that touch only the store: pull an image by reference, check
 * an image out into a directory.
 */
import { doing, NotFoundError } from '../errors'
import { parseReference } from '../reference/reference'
import { Store } from '../store/store'
import type { CheckoutStats } from '../checkout/checkout'
import type { ImageSource } from '../transports/image-source'
import { describeInput, openImageSource } from '../transports/open'
import { sourceOptions, type SourceFlags } from './source-options'
import type { OpsContext } from './context'
import { pullImage, PullResult } from './pull'

export async function openStore(ctx: OpsContext): Promise<Store> {
  return Store.open(ctx.paths.storeDir, { onWait: (m: string) => ctx.reporter.info(m) })
}

export async function pull(ctx: OpsContext, image: string, opts: SourceFlags & { source?: ImageSource } = {}): Promise<PullResult> {
  const opened = opts.source ? { refName: parseReference(image).toString(), source: opts.source } : await openImageSource(image, sourceOptions(ctx, opts))
  const name = opened.refName
  const source = opened.source
  const store = await openStore(ctx)
  try {
    return await doing(`pulling ${name}`, () => pullImage(store, source, name, { reporter: ctx.reporter }))
  } finally {
    await source.close()
  }
}

export async function checkoutImage(ctx: OpsContext, image: string, dir: string, opts: { copy?: boolean } = {}): Promise<CheckoutStats> {
  const name = describeInput(image).refName ?? image
  const store = await openStore(ctx)
  const rec = await store.getImageRef(name)
  if (!rec) throw new NotFoundError('image.not-in-store', `image ${name} is not in the store`, { hint: `sysctr images pull ${name}` })
  return doing(`checking out ${name} into ${dir}`, () => store.checkout(rec.commit, dir, { copy: opts.copy }))
}
