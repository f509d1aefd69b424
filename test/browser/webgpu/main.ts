/// <reference types="vite/client" />
// A page that exposes @tamp/webgpu's browser entry to the test (window.tamp).
import wasm from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreaded from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import { renderScene, rgbToRgba, sceneSeed } from '@tamp/core';
import * as webgpu from '@tamp/webgpu';

const wasmPaths = { 'tfjs-backend-wasm.wasm': wasm, 'tfjs-backend-wasm-simd.wasm': wasmSimd, 'tfjs-backend-wasm-threaded-simd.wasm': wasmThreaded };

declare global {
  interface Window {
    tamp: typeof webgpu & { renderScene: typeof renderScene; rgbToRgba: typeof rgbToRgba; sceneSeed: typeof sceneSeed; ready: true };
  }
}
// loadModel with the wasmPaths option, as a library user would call it.
const loadModel: typeof webgpu.loadModel = (source, options = {}) => webgpu.loadModel(source, { wasmPaths, ...options });
window.tamp = { ...webgpu, loadModel, renderScene, rgbToRgba, sceneSeed, ready: true };
