import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
globalThis.navigator = { gpu: create([]) };
const tf = await import('@tensorflow/tfjs-core');
await import('@tensorflow/tfjs-backend-webgpu');
await tf.setBackend('webgpu');
const a = tf.randomNormal([4,4]);
try { console.log(tf.matMul(a,a).dataSync()); } catch (e) { console.log('dataSync ERR', e.message); }
console.log(await tf.matMul(a,a).data());
process.exit(0);
