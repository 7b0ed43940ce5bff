/**
 * WebGPU through Dawn's Node bindings (the npm package `webgpu`, prebuilt for Linux, macOS and
 * Windows): finding an adapter, telling a hardware one from a software one (Mesa's llvmpipe,
 * SwiftShader), and what to install when there is none. tfjs-backend-webgpu needs
 * `navigator.gpu` before it is imported; `startDawn` provides it.
 */
import { existsSync, readdirSync } from 'node:fs';
import { BackendError } from './errors.js';

/** What an adapter says of itself (GPUAdapterInfo), and whether it is a software renderer. */
export interface AdapterFacts {
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  readonly software: boolean;
}

/** One line for logs and the node's hello: "NVIDIA H200 (nvidia hopper)". */
export function describeAdapter(a: AdapterFacts): string {
  const name = a.description || a.device || 'unnamed adapter';
  const kind = [a.vendor, a.architecture].filter((s) => s.length > 0).join(' ');
  return `${name}${kind ? ` (${kind})` : ''}${a.software ? ', software' : ''}`;
}

const SOFTWARE_NAMES = /llvmpipe|lavapipe|swiftshader|software|warp/i;

/** Whether adapter info describes a software renderer (no GPU behind it). */
export function isSoftwareAdapter(info: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean }): boolean {
  if (info.isFallbackAdapter === true) return true;
  return [info.architecture, info.device, info.description].some((s) => typeof s === 'string' && SOFTWARE_NAMES.test(s));
}

/** What to install for WebGPU on this platform (no adapter was found). */
export function driverHint(platform: NodeJS.Platform = process.platform): string {
  if (platform === 'darwin') return 'WebGPU on macOS runs on Metal, which every Mac since 2012 has; update macOS if no adapter is found';
  if (platform === 'win32') return 'WebGPU on Windows runs on Direct3D 12: install the GPU vendor\'s current driver';
  return (
    'WebGPU on Linux runs on Vulkan: install the GPU\'s Vulkan driver (NVIDIA: the proprietary driver with its Vulkan ICD, e.g. Debian\'s nvidia-vulkan-icd; ' +
    'AMD and Intel: mesa-vulkan-drivers) and the loader (libvulkan1); in a container, the NVIDIA runtime must pass graphics (NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics). ' +
    'Without a GPU, Mesa\'s software driver (llvmpipe) serves for testing, but only Mesa 23 or newer: on Debian bookworm `apt-get install -t bookworm-backports mesa-vulkan-drivers` ' +
    '(bookworm\'s own 22.3 is refused by Dawn)'
  );
}

/**
 * Whether this machine may have a GPU that WebGPU can use, without loading Dawn: on Linux a
 * render node (/dev/dri/renderD*) or an NVIDIA device (/dev/nvidia0); macOS and Windows always
 * may. `auto` asks Dawn only where this is true.
 */
export function mayHaveGpu(platform: NodeJS.Platform = process.platform, exists: (path: string) => boolean = existsSync, list: (dir: string) => string[] = safeList): boolean {
  if (platform === 'darwin' || platform === 'win32') return true;
  return exists('/dev/nvidia0') || list('/dev/dri').some((name) => name.startsWith('renderD'));
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Whether an NVIDIA driver is loaded here (CUDA for tfjs-node-gpu needs it). */
export function hasNvidiaDriver(exists: (path: string) => boolean = existsSync): boolean {
  return exists('/proc/driver/nvidia/version') || exists('/dev/nvidia0');
}

interface DawnGpu {
  requestAdapter(options?: { powerPreference?: 'high-performance' | 'low-power' }): Promise<DawnAdapter | null>;
}
interface DawnAdapter {
  readonly info: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
}
interface DawnModule {
  create(flags: string[]): DawnGpu;
  globals: Record<string, unknown>;
}

async function loadDawn(): Promise<DawnModule> {
  try {
    return (await import('webgpu')) as unknown as DawnModule;
  } catch (err) {
    throw new BackendError(`the webgpu package (Dawn) could not be loaded: ${(err as Error).message}; it ships with dptrain (npm ci installs it) for linux-x64, linux-arm64, macOS and Windows`);
  }
}

/** Dawn's flags for an adapter chosen by name (`adapter=` matches a part of the name). */
function dawnFlags(adapterName: string | undefined): string[] {
  return adapterName ? [`adapter=${adapterName}`] : [];
}

/**
 * The adapters Dawn offers here, by name, as Dawn lists them when asked for one it does not
 * have (the package's documented way to enumerate them).
 */
export async function listAdapters(): Promise<{ backend: string; name: string }[]> {
  const dawn = await loadDawn();
  let text = '';
  try {
    await dawn.create(['adapter=\u0001dptrain-list\u0001']).requestAdapter();
  } catch (err) {
    text = (err as Error).message;
  }
  return [...text.matchAll(/\* backend: '([^']*)', name: '([^']*)'/g)].map((m) => ({ backend: m[1]!, name: m[2]! }));
}

/**
 * Loads Dawn, finds an adapter (by name when given; the high-performance one otherwise) and
 * sets `navigator.gpu` for tfjs-backend-webgpu. A software adapter is refused unless
 * `allowSoftware`. Returns what the adapter says of itself.
 */
export async function startDawn(options: { adapterName?: string; allowSoftware: boolean }): Promise<AdapterFacts> {
  const dawn = await loadDawn();
  // Dawn warns on every start where XDG_RUNTIME_DIR is unset (a service, a container)
  if (process.platform === 'linux' && !process.env['XDG_RUNTIME_DIR']) process.env['XDG_RUNTIME_DIR'] = '/tmp';
  let gpu: DawnGpu;
  let adapter: DawnAdapter | null;
  try {
    gpu = dawn.create(dawnFlags(options.adapterName));
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    throw new BackendError(`WebGPU: ${(err as Error).message.trim()}${options.adapterName ? ` (asked for adapter "${options.adapterName}")` : ''}`);
  }
  if (!adapter) throw new BackendError(`WebGPU found no adapter on this machine. ${driverHint()}`);
  const info = adapter.info;
  const facts: AdapterFacts = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    software: isSoftwareAdapter(info),
  };
  if (facts.software && !options.allowSoftware) {
    throw new BackendError(`WebGPU's only adapter here is a software renderer (${describeAdapter(facts)}), not a GPU`);
  }
  Object.assign(globalThis, dawn.globals);
  const nav = (globalThis as { navigator?: object }).navigator;
  if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true, writable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  return facts;
}
