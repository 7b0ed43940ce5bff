import { initBackend } from './dist/shared/backend.js';
import { GradientEngine } from './dist/worker/gradient.js';
await initBackend(process.argv[2]);
const spec = { inputDim: 45, layers: [{units:64,activation:'relu',useBias:true},{units:64,activation:'relu',useBias:true},{units:1,activation:'sigmoid',useBias:true}], loss:'binaryCrossentropy', metrics:['accuracy'] };
const e = new GradientEngine(spec);
const w = new Float32Array(e.layout.size).map(()=>Math.random()*0.1);
const x = new Float32Array(32*45).map(()=>Math.random()); const y = new Float32Array(32).map(()=>Math.random()>0.5?1:0);
for (let r=0;r<10;r++){ const t=performance.now(); for (let i=0;i<100;i++){ e.setWeights(w); e.gradient(x,y,32);} console.log('ms/step', ((performance.now()-t)/100).toFixed(2)); }
