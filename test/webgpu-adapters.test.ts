/**
 * What `auto` looks at before it loads Dawn, and how adapters are told apart and described:
 * pure functions of shared/webgpu.ts, with the machine's files given.
 */
import { describe, expect, it } from 'vitest';
import { describeAdapter, driverHint, hasNvidiaDriver, isSoftwareAdapter, mayHaveGpu } from '../shared/webgpu.js';

describe('WebGPU adapters and auto\'s checks', () => {
  it('a GPU may be there: a render node or an NVIDIA device on Linux; always on macOS and Windows', () => {
    const none = (): boolean => false;
    expect(mayHaveGpu('linux', none, () => [])).toBe(false);
    expect(mayHaveGpu('linux', none, () => ['card0', 'renderD128'])).toBe(true);
    expect(mayHaveGpu('linux', (p) => p === '/dev/nvidia0', () => [])).toBe(true);
    expect(mayHaveGpu('linux', none, () => ['card0'])).toBe(false);
    expect(mayHaveGpu('darwin', none, () => [])).toBe(true);
    expect(mayHaveGpu('win32', none, () => [])).toBe(true);
    expect(hasNvidiaDriver((p) => p === '/proc/driver/nvidia/version')).toBe(true);
    expect(hasNvidiaDriver(() => false)).toBe(false);
  });

  it('software renderers are told from GPUs (auto never takes one)', () => {
    expect(isSoftwareAdapter({ vendor: 'mesa', architecture: 'software', device: 'llvmpipe-llvm-15', description: 'llvmpipe: Mesa 25.0.7' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'google', architecture: '', device: 'swiftshader device', description: 'SwiftShader' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'microsoft', description: 'Microsoft Basic Render Driver (WARP)' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200', isFallbackAdapter: false })).toBe(false);
    expect(isSoftwareAdapter({ vendor: 'apple', architecture: 'metal-3', description: 'Apple M2' })).toBe(false);
    expect(isSoftwareAdapter({ vendor: 'x', description: 'y', isFallbackAdapter: true })).toBe(true);
  });

  it('describes an adapter in one line: name, vendor and architecture, and whether it is software', () => {
    expect(describeAdapter({ vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200', software: false })).toBe('NVIDIA H200 (nvidia hopper)');
    expect(describeAdapter({ vendor: 'mesa', architecture: 'software', device: 'llvmpipe', description: '', software: true })).toBe('llvmpipe (mesa software), software');
    expect(describeAdapter({ vendor: '', architecture: '', device: '', description: '', software: false })).toBe('unnamed adapter');
  });

  it('says what to install on each platform', () => {
    expect(driverHint('linux')).toMatch(/Vulkan driver.*libvulkan1.*NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics.*bookworm-backports mesa-vulkan-drivers/);
    expect(driverHint('darwin')).toMatch(/Metal/);
    expect(driverHint('win32')).toMatch(/Direct3D 12/);
  });
});
