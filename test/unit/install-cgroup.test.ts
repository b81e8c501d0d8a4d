import { describe, expect, it } from 'vitest'
import { keepContainerInService, slicePath } from '../../src/runtime/cgroup'
import { UnitFile } from '../../src/systemd/unit-file'

describe('slicePath', () => {
  it.each([
    ['system.slice', '/system.slice'],
    ['-.slice', ''],
    ['machine.slice', '/machine.slice'],
    ['a-b-c.slice', '/a.slice/a-b.slice/a-b-c.slice'],
  ])('%s -> %s', (slice, path) => expect(slicePath(slice)).toBe(path))
})

describe('keepContainerInService', () => {
  const config = JSON.stringify({ root: { path: 'rootfs', readonly: true }, linux: {} })
  const unit = (service: string) => UnitFile.parse(`[Service]\nExecStart=/bin/true\n${service}`)

  it('puts the container below the service when the unit delegates', () => {
    const out = JSON.parse(keepContainerInService(config, 'etcd', unit('Delegate=yes\n')))
    expect(out.linux.cgroupsPath).toBe('/system.slice/etcd.service/container')
  })
  it('follows the unit slice', () => {
    const out = JSON.parse(keepContainerInService(config, 'etcd', unit('Delegate=yes\nSlice=infra-net.slice\n')))
    expect(out.linux.cgroupsPath).toBe('/infra.slice/infra-net.slice/etcd.service/container')
  })
  it('leaves the config alone without delegation or when the image names a path', () => {
    expect(keepContainerInService(config, 'etcd', unit(''))).toBe(config)
    const own = JSON.stringify({ linux: { cgroupsPath: '/mine' } })
    expect(keepContainerInService(own, 'etcd', unit('Delegate=yes\n'))).toBe(own)
  })
})
