/** The backend names a user can ask for (pure, so config validation does not load TensorFlow.js). */
export const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'native', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];
