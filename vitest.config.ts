import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // Training tests use every core; running files one at a time keeps them from starving each other.
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 60_000,
    // the native backend computes every product on onnxruntime, however small, so that the
    // equivalence suites (small models) test its kernels, not the wasm ones below its threshold
    env: { DPTRAIN_NATIVE_MIN_FLOPS: '0' },
  },
});
