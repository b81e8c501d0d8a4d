/**
 * OCI image-spec and distribution-spec shapes, in the specs' own words.
 * Docker schema 2 media types are accepted alongside OCI ones.
 */

/** `algorithm:hex`, e.g. `sha256:3f2a…`. Branded so it is never mixed with other strings. */
export type Digest = string & { readonly __brand: 'Digest' }

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const

export const MANIFEST_MEDIA_TYPES: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest]
export const INDEX_MEDIA_TYPES: readonly string[] = [MediaType.ociIndex, MediaType.dockerManifestList]
export const CONFIG_MEDIA_TYPES: readonly string[] = [MediaType.ociConfig, MediaType.dockerConfig]

export type LayerCompression = 'gzip' | 'zstd' | 'none'

export interface Platform {
  architecture: string
  os: string
  variant?: string
  'os.version'?: string
  'os.features'?: string[]
}

export interface Descriptor {
  mediaType: string
  digest: Digest
  size: number
  urls?: string[]
  annotations?: Record<string, string>
  platform?: Platform
}

export interface ImageManifest {
  schemaVersion: 2
  mediaType?: string
  config: Descriptor
  layers: Descriptor[]
  annotations?: Record<string, string>
}

export interface ImageIndex {
  schemaVersion: 2
  mediaType?: string
  manifests: Descriptor[]
  annotations?: Record<string, string>
}

/** The parts of the image config sysctr reads. */
export interface ImageConfig {
  architecture?: string
  os?: string
  config?: {
    User?: string
    Env?: string[]
    Entrypoint?: string[] | null
    Cmd?: string[] | null
    WorkingDir?: string
    Labels?: Record<string, string> | null
    StopSignal?: string
  }
  rootfs?: { type: string; diff_ids: Digest[] }
  history?: unknown[]
}

/** A manifest resolved for one platform, with its config, as a source hands it over. */
export interface ResolvedImage {
  /** Digest of the manifest actually used (after picking from an index). */
  manifestDigest: Digest
  /** Digest the reference resolved to first (the index's, when there was one). */
  topDigest: Digest
  manifest: ImageManifest
  manifestBytes: Buffer
  config: ImageConfig
  configBytes: Buffer
}
